import { Duplex, Writable } from 'node:stream';
import mqtt from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { type EmbeddedBroker, startEmbeddedBroker } from '../../../../../cloud/fleet/broker/embedded.js';
import { guardConnection } from '../../../../../cloud/fleet/broker/packet-guard.js';
import { createLogger } from '../../../../../shared/logger.js';

const limits = { firstPacketBytes: 1 << 16, packetBytes: 1 << 20 };
const turns = async (n: number) => {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
};

/** A socket stand-in that records what was written and whether it was destroyed. */
function fakeSocket() {
  const written: Buffer[] = [];
  const socket = new Duplex({
    read() {},
    write(chunk: Buffer, _encoding, done) {
      written.push(chunk);
      done();
    },
  });
  return { socket, written };
}

/** What a connection reports to aedes (which logs every 'error' as "mqtt client error"). */
function watch(connection: Duplex) {
  const errors: Error[] = [];
  connection.on('error', (error) => errors.push(error));
  const closed = new Promise<void>((resolve) => connection.once('close', () => resolve()));
  return { errors, closed };
}

// `npm start` logged "mqtt client error: The operation was aborted" each time an agent closed its
// enrollment connection: the connection aedes reads reported an AbortError when its socket went.
describe('a client connection that ends', () => {
  it('closes without an error when the peer goes away', async () => {
    for (const end of [(s: Duplex) => s.destroy(), (s: Duplex) => s.emit('error', new Error('ECONNRESET'))]) {
      const { socket } = fakeSocket();
      const connection = guardConnection(socket, limits, () => {});
      const { errors, closed } = watch(connection);
      connection.write(Buffer.from([0x20, 2, 0, 0])); // a CONNACK on its way out
      socket.push(Buffer.from([0xc0, 0])); // a PINGREQ coming in
      await turns(5);
      end(socket);
      await closed;
      await turns(5);
      expect(errors).toEqual([]);
    }
  });

  it('ends when the peer half-closes, and closes the socket when aedes destroys it', async () => {
    const { socket } = fakeSocket();
    const connection = guardConnection(socket, limits, () => {});
    const { errors } = watch(connection);
    const received: Buffer[] = [];
    connection.on('data', (chunk: Buffer) => received.push(chunk));
    const ended = new Promise<void>((resolve) => connection.once('end', () => resolve()));
    socket.push(Buffer.from([0xc0, 0]));
    socket.push(null);
    await ended;
    expect(Buffer.concat(received)).toEqual(Buffer.from([0xc0, 0]));
    connection.destroy(); // aedes closing the client
    await turns(5);
    expect(socket.destroyed).toBe(true);
    expect(errors).toEqual([]);
  });

  it('still reports what the frame guard refuses', async () => {
    const { socket } = fakeSocket();
    const connection = guardConnection(socket, limits, () => {});
    const { errors, closed } = watch(connection);
    socket.push(Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x01])); // malformed remaining length
    await closed;
    expect(errors.map((e) => e.message)).toEqual(['malformed MQTT remaining length']);
    expect(socket.destroyed).toBe(true);
  });
});

describe('the embedded broker when clients leave', () => {
  let broker: EmbeddedBroker | undefined;
  afterEach(async () => {
    await broker?.close();
    broker = undefined;
  });

  it('logs no client error for a clean or an abrupt disconnect, and closes the socket of a client it drops', async () => {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const logger = createLogger({ name: 'broker', level: 'debug', pretty: false, destination });
    broker = await startEmbeddedBroker({ port: 0, logger });
    const url = `mqtt://127.0.0.1:${broker.port}`;
    const connect = async (clientId: string) => {
      const client = mqtt.connect(url, { clientId, reconnectPeriod: 0 });
      await new Promise<void>((resolve, reject) => {
        client.once('connect', () => resolve());
        client.once('error', reject);
      });
      await client.subscribeAsync(`t/${clientId}`);
      await client.publishAsync(`t/${clientId}`, 'hello', { qos: 1 });
      return client;
    };
    const gone = (n: number) =>
      new Promise<void>((resolve) => {
        let left = n;
        broker!.broker.on('clientDisconnect', () => --left === 0 && resolve());
      });

    const leaving = gone(2);
    await (await connect('clean')).endAsync(); // DISCONNECT, then close (as an enrolled agent does)
    await (await connect('abrupt')).endAsync(true); // socket closed without a DISCONNECT
    await leaving;

    const dropped = await connect('dropped');
    const socketClosed = new Promise<void>((resolve) => dropped.stream.once('close', () => resolve()));
    broker.disconnect('dropped');
    await socketClosed;
    dropped.end(true);
    await turns(20);

    const logged = lines.map((line) => JSON.parse(line));
    expect(logged.filter((l) => /mqtt (client|connection) error/.test(l.msg))).toEqual([]);
  });
});
