import type { Server } from 'node:http';
import { FleetError } from '../../shared/errors/index.js';

/** Where the inference service listens: a TCP host and port, or a Unix socket path. */
export interface ListenAddress {
  host?: string;
  port?: number;
  path?: string;
}

/** Binds the server; a failure becomes a coded error that says what to change. */
export function listen(server: Server, where: ListenAddress): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => reject(listenError(error, where));
    server.once('error', onError);
    server.listen(where, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

/** A listen failure as a coded error that names the address and how to choose another. */
function listenError(error: NodeJS.ErrnoException, where: ListenAddress) {
  const address = where.path ? `socket ${where.path}` : `${where.host}:${where.port}`;
  const fix = where.path
    ? 'choose another path with --serve-socket'
    : 'choose another port with --serve-port (0 = any free port), or turn serving off with --no-serve';
  if (error.code === 'EADDRINUSE') {
    return new FleetError(
      'SERVE_ADDRESS_IN_USE',
      `the inference service cannot listen on ${address}: it is taken (another agent or program); ${fix}`,
      { address },
    );
  }
  return new FleetError(
    'SERVE_LISTEN',
    `the inference service cannot listen on ${address}: ${error.code ?? error.message}; ${fix}`,
    { address },
  );
}
