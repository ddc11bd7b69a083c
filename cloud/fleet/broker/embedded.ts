import { createServer, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createServer as createTlsServer } from 'node:tls';
import { Aedes, type AedesOptions, type Client } from 'aedes';
import type { Logger } from '../../../shared/logger.js';
import { type BrokerIdentity, mayPublish, maySubscribe } from './acl.js';
import { guardConnection } from './packet-guard.js';
import { WindowCounter } from './rate-limit.js';

/** Decides who a connecting client is; undefined refuses the connection. */
export type BrokerAuthenticator = (
  clientId: string,
  username: string | undefined,
  password: string | undefined,
) => Promise<BrokerIdentity | undefined>;

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
  /** Largest CONNECT packet (sent before authentication), in bytes; default 64 KiB. */
  maxConnectBytes?: number;
  /** Failed authentications per client address per minute before refusals stop being logged; default 20. */
  authFailuresPerMinute?: number;
  /** Enrollment connections per client address per minute; default 30. */
  enrollmentsPerMinute?: number;
  logger: Logger;
}

export interface EmbeddedBroker {
  url: string;
  port: number;
  broker: Aedes;
  /** Disconnects a client by id. */
  disconnect(clientId: string): void;
  /** Ends every session of a device (whatever its client id) and refuses it from now on. */
  revokeDevice(deviceId: string): number;
  close(): Promise<void>;
}

const BROKER_DEFAULTS = {
  port: 1883,
  host: '127.0.0.1',
  maxPacketBytes: 1024 * 1024,
  maxConnectBytes: 64 * 1024,
  authFailuresPerMinute: 20,
  enrollmentsPerMinute: 30,
};
/** Room for the topic and headers around the largest payload. */
const PACKET_OVERHEAD_BYTES = 64 * 1024;
const BAD_CREDENTIALS = 4;
const SERVER_UNAVAILABLE = 3;

interface Session {
  identity: BrokerIdentity;
  /** An enrolling client may publish its one request once. */
  requested?: boolean;
}

type AuthDone = Parameters<NonNullable<AedesOptions['authenticate']>>[3];

function refuse(done: AuthDone, message: string, returnCode: number) {
  done(Object.assign(new Error(message), { returnCode }) as Parameters<AuthDone>[0], false);
}

type Access = Partial<AedesOptions> & { revoke(deviceId: string): Client[] };

function accessHooks(
  options: EmbeddedBrokerOptions & typeof BROKER_DEFAULTS,
  addresses: WeakMap<object, string>,
): Access {
  const authenticate = options.authenticate;
  const sessions = new WeakMap<Client, Session>();
  const clients = new Set<Client>();
  const revoked = new Set<string>();
  const failures = new WindowCounter(options.authFailuresPerMinute, 60_000);
  const enrollments = new WindowCounter(options.enrollmentsPerMinute, 60_000);
  // One warning per address and minute once it is over a limit.
  const warned = new WindowCounter(1, 60_000);
  const log = options.logger;
  const revoke = (deviceId: string) => {
    revoked.add(deviceId);
    const ended = [...clients].filter((c) => {
      const identity = sessions.get(c)?.identity;
      return identity?.kind === 'device' && identity.deviceId === deviceId;
    });
    for (const client of ended) client.close();
    return ended;
  };
  if (!authenticate) return { revoke };
  return {
    revoke,
    authenticate: async (client, username, password, done) => {
      const address = addresses.get(client.conn) ?? 'unknown';
      // The device registry may be a database away: a failed lookup refuses, never crashes.
      const identity = await authenticate(client.id, username ?? undefined, password?.toString('utf8')).catch(
        () => undefined,
      );
      if (!identity || (identity.kind === 'device' && revoked.has(identity.deviceId))) {
        // Past the limit an address's refusals are no longer logged: a flood costs no log volume.
        if (failures.hit(address)) {
          log.warn({ code: 'UNAUTHORIZED', client: client.id, username, address }, 'mqtt connection refused');
        }
        return refuse(done, 'bad username or password', BAD_CREDENTIALS);
      }
      if (identity.kind === 'enroll' && !enrollments.hit(address)) {
        if (warned.hit(`enroll ${address}`)) {
          log.warn({ code: 'RATE_LIMITED', address }, 'too many enrollments from this address');
        }
        return refuse(done, 'too many enrollments from this address', SERVER_UNAVAILABLE);
      }
      sessions.set(client, { identity });
      clients.add(client);
      client.once('close', () => clients.delete(client));
      done(null, true);
    },
    authorizePublish: (client, packet, done) => {
      // client is null for messages the broker itself publishes (e.g. $SYS).
      const session = client ? sessions.get(client) : { identity: { kind: 'cloud' as const } };
      if (client && packet.payload.length > options.maxPacketBytes) {
        log.warn(
          { code: 'MSG_TOO_LARGE', client: client.id, bytes: packet.payload.length },
          'mqtt publish refused',
        );
        return done(new Error('payload too large'));
      }
      const identity = session?.identity;
      const allowed =
        identity !== undefined &&
        mayPublish(identity, packet.topic, packet.retain) &&
        !(identity.kind === 'device' && revoked.has(identity.deviceId)) &&
        !(identity.kind === 'enroll' && session?.requested);
      if (allowed) {
        if (identity.kind === 'enroll' && session) session.requested = true;
        return done(null);
      }
      log.warn({ code: 'FORBIDDEN', client: client?.id, topic: packet.topic }, 'mqtt publish refused');
      done(new Error(`publish to ${packet.topic} not allowed`));
    },
    authorizeSubscribe: (client, subscription, done) => {
      const identity = sessions.get(client)?.identity;
      if (identity && maySubscribe(identity, subscription.topic)) return done(null, subscription);
      log.warn({ code: 'FORBIDDEN', client: client.id, topic: subscription.topic }, 'mqtt subscribe refused');
      done(null, null);
    },
  };
}

/**
 * The embedded MQTT broker (aedes on a TCP server). One misbehaving client only ever costs
 * its own connection: client errors are logged, never thrown; packets over the limits are
 * refused from their header, before aedes buffers them.
 */
export async function startEmbeddedBroker(options: EmbeddedBrokerOptions): Promise<EmbeddedBroker> {
  const o = { ...BROKER_DEFAULTS, ...withoutUndefined(options) } as EmbeddedBrokerOptions &
    typeof BROKER_DEFAULTS;
  const addresses = new WeakMap<object, string>();
  const { revoke, ...hooks } = accessHooks(o, addresses);
  const broker = await Aedes.createBroker({ ...hooks });
  broker.on('clientError', (client, error) => {
    o.logger.warn({ client: client?.id, err: error.message }, 'mqtt client error');
  });
  broker.on('connectionError', (client, error) => {
    o.logger.warn({ client: client?.id, err: error.message }, 'mqtt connection error');
  });
  const sockets = new Set<Socket>();
  const limits = {
    firstPacketBytes: o.maxConnectBytes,
    packetBytes: o.maxPacketBytes + PACKET_OVERHEAD_BYTES,
  };
  const accept = (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    const address = socket.remoteAddress ?? 'unknown';
    const guarded: Duplex = guardConnection(socket, limits, (bytes, limit) =>
      o.logger.warn(
        { code: 'MSG_TOO_LARGE', address, bytes, limit },
        'mqtt packet over the limit: connection closed',
      ),
    );
    addresses.set(guarded, address);
    broker.handle(guarded);
  };
  const server: Server = o.tls
    ? createTlsServer({ cert: o.tls.certPem, key: o.tls.keyPem, minVersion: 'TLSv1.2' }, accept)
    : createServer((socket) => {
        socket.setNoDelay(true);
        accept(socket);
      });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : o.port;
  const displayHost = o.host === '0.0.0.0' || o.host === '127.0.0.1' ? 'localhost' : o.host;
  return {
    url: `${o.tls ? 'mqtts' : 'mqtt'}://${displayHost}:${port}`,
    port,
    broker,
    disconnect: (clientId) => {
      const client = (broker as unknown as { clients: Record<string, Client> }).clients[clientId];
      client?.close();
    },
    revokeDevice: (deviceId) => revoke(deviceId).length,
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

function withoutUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
