import { createServer, type Server } from 'node:net';
import { Aedes } from 'aedes';
import type { Logger } from '../../shared/logger.js';

export interface EmbeddedBrokerOptions {
  /** TCP port; 0 picks a free one. Default 1883. */
  port?: number;
  /** Interface to bind; default '127.0.0.1' (use '0.0.0.0' to accept devices on the network). */
  host?: string;
  logger: Logger;
}

export interface EmbeddedBroker {
  url: string;
  port: number;
  broker: Aedes;
  close(): Promise<void>;
}

/**
 * The embedded MQTT broker (aedes on a TCP server). One misbehaving client only ever costs
 * its own connection: client errors are logged, never thrown.
 */
export async function startEmbeddedBroker(options: EmbeddedBrokerOptions): Promise<EmbeddedBroker> {
  const broker = await Aedes.createBroker();
  broker.on('clientError', (client, error) => {
    options.logger.warn({ client: client?.id, err: error.message }, 'mqtt client error');
  });
  broker.on('connectionError', (client, error) => {
    options.logger.warn({ client: client?.id, err: error.message }, 'mqtt connection error');
  });
  const server: Server = createServer(broker.handle);
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 1883, host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : (options.port ?? 1883);
  const displayHost = host === '0.0.0.0' || host === '127.0.0.1' ? 'localhost' : host;
  return {
    url: `mqtt://${displayHost}:${port}`,
    port,
    broker,
    close: async () => {
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
