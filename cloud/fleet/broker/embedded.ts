import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { Aedes, type AedesOptions, type Client } from 'aedes';
import type { Logger } from '../../../shared/logger.js';
import { type BrokerIdentity, mayPublish, maySubscribe } from './acl.js';

/** Decides who a connecting client is; undefined refuses the connection. */
export type BrokerAuthenticator = (
  clientId: string,
  username: string | undefined,
  password: string | undefined,
) => BrokerIdentity | undefined;

export interface EmbeddedBrokerOptions {
  /** TCP port; 0 picks a free one. Default 1883. */
  port?: number;
  /** Interface to bind; default '127.0.0.1' (use '0.0.0.0' to accept devices on the network). */
  host?: string;
  /** When given, every client must authenticate and the ACL in acl.ts applies. Default: open broker. */
  authenticate?: BrokerAuthenticator;
  /** Listen with TLS (mqtts) using this certificate and key (PEM); default plain TCP. */
  tls?: { certPem: string; keyPem: string };
  /** Largest payload a client may publish, in bytes; default 1 MiB (blocks are 64 KiB). Checked with auth on. */
  maxPacketBytes?: number;
  logger: Logger;
}

export interface EmbeddedBroker {
  url: string;
  port: number;
  broker: Aedes;
  /** Disconnects a client by id (e.g. a device just revoked). */
  disconnect(clientId: string): void;
  close(): Promise<void>;
}

const identities = new WeakMap<Client, BrokerIdentity>();
const BAD_CREDENTIALS = 4;

function accessHooks(options: EmbeddedBrokerOptions): Partial<AedesOptions> {
  const authenticate = options.authenticate;
  if (!authenticate) return {};
  const log = options.logger;
  const maxPacketBytes = options.maxPacketBytes ?? 1024 * 1024;
  return {
    authenticate: (client, username, password, done) => {
      const identity = authenticate(client.id, username ?? undefined, password?.toString('utf8'));
      if (!identity) {
        log.warn({ code: 'UNAUTHORIZED', client: client.id, username }, 'mqtt connection refused');
        const error = Object.assign(new Error('bad username or password'), { returnCode: BAD_CREDENTIALS });
        return done(error, false);
      }
      identities.set(client, identity);
      done(null, true);
    },
    authorizePublish: (client, packet, done) => {
      // client is null for messages the broker itself publishes (e.g. $SYS).
      const identity = client ? identities.get(client) : { kind: 'cloud' as const };
      if (client && packet.payload.length > maxPacketBytes) {
        log.warn(
          { code: 'MSG_TOO_LARGE', client: client.id, bytes: packet.payload.length },
          'mqtt publish refused',
        );
        return done(new Error('payload too large'));
      }
      if (identity && mayPublish(identity, packet.topic, packet.retain)) return done(null);
      log.warn({ code: 'FORBIDDEN', client: client?.id, topic: packet.topic }, 'mqtt publish refused');
      done(new Error(`publish to ${packet.topic} not allowed`));
    },
    authorizeSubscribe: (client, subscription, done) => {
      const identity = identities.get(client);
      if (identity && maySubscribe(identity, subscription.topic)) return done(null, subscription);
      log.warn({ code: 'FORBIDDEN', client: client.id, topic: subscription.topic }, 'mqtt subscribe refused');
      done(null, null);
    },
  };
}

/**
 * The embedded MQTT broker (aedes on a TCP server). One misbehaving client only ever costs
 * its own connection: client errors are logged, never thrown.
 */
export async function startEmbeddedBroker(options: EmbeddedBrokerOptions): Promise<EmbeddedBroker> {
  const broker = await Aedes.createBroker({ ...accessHooks(options) });
  broker.on('clientError', (client, error) => {
    options.logger.warn({ client: client?.id, err: error.message }, 'mqtt client error');
  });
  broker.on('connectionError', (client, error) => {
    options.logger.warn({ client: client?.id, err: error.message }, 'mqtt connection error');
  });
  const sockets = new Set<Socket>();
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  };
  const server: Server = options.tls
    ? createTlsServer(
        { cert: options.tls.certPem, key: options.tls.keyPem, minVersion: 'TLSv1.2' },
        (socket) => {
          track(socket);
          broker.handle(socket);
        },
      )
    : createServer((socket) => {
        track(socket);
        socket.setNoDelay(true);
        broker.handle(socket);
      });
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 1883, host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : (options.port ?? 1883);
  const displayHost = host === '0.0.0.0' || host === '127.0.0.1' ? 'localhost' : host;
  return {
    url: `${options.tls ? 'mqtts' : 'mqtt'}://${displayHost}:${port}`,
    port,
    broker,
    disconnect: (clientId) => {
      const client = (broker as unknown as { clients: Record<string, Client> }).clients[clientId];
      client?.close();
    },
    close: async () => {
      // Stop accepting first: devices reconnect within a fraction of a second, and a socket
      // accepted after the broker closed would keep server.close() waiting forever.
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}
