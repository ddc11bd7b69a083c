import { Duplex, PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { guardConnection } from '../../../../../cloud/fleet/broker/packet-guard.js';

const limits = { firstPacketBytes: 1 << 16, packetBytes: 1 << 20 };
const BLOCK = Buffer.alloc(64 * 1024, 7);
const turns = async (n: number) => {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
};

// aedes waits for a subscriber's connection to drain before it handles the publisher's next
// packet. A connection that queues (up to a bound) keeps one slow reader from stalling the
// broker, and with it the cloud's own connection (the deadlock seen at 1,000 devices).
describe('broker connection write queue', () => {
  it('accepts writes a slow reader has not taken, up to its bound, then makes the writer wait', async () => {
    // A peer that does not read: its socket takes 16 KiB, like a starved device's.
    const delivered: Buffer[] = [];
    let waiting: Array<() => void> = [];
    let reading = false;
    const socket = new Duplex({
      writableHighWaterMark: 16 * 1024,
      read() {},
      write(chunk: Buffer, _encoding, done) {
        delivered.push(chunk);
        if (reading) done();
        else waiting.push(() => done());
      },
    });
    const connection = guardConnection(socket, limits, () => {}, 1024 * 1024);
    // aedes listens for errors on every connection; a healthy one reports none.
    const errors: Error[] = [];
    connection.on('error', (error) => errors.push(error));
    let accepted = 0;
    for (let i = 0; i < 32; i++) connection.write(BLOCK, () => accepted++);
    await turns(50);
    // 2 MiB written: the first 1 MiB queued at once, the rest waits for the reader.
    expect(accepted).toBeGreaterThanOrEqual(15);
    expect(accepted).toBeLessThan(32);
    // The reader catches up: everything goes out, in order.
    reading = true;
    for (const release of waiting) release();
    waiting = [];
    await turns(200);
    expect(accepted).toBe(32);
    expect(Buffer.concat(delivered).equals(Buffer.concat(Array.from({ length: 32 }, () => BLOCK)))).toBe(
      true,
    );
    connection.destroy();
    await turns(5);
    expect(errors).toEqual([]);
  });
});

// aedes reads a connection on 'readable' and again once the packets it read are handled. A
// connection that pushes while aedes is inside read() (a Transform piped behind Duplex.from
// did) can lose the next 'readable' when that read ended in the middle of a large packet:
// aedes then never reads the connection again (the cloud's connection stalled a rollout).
describe('broker connection reads', () => {
  it('pushes only from socket data, never inside read(), and delivers every byte in order', async () => {
    const socket = new PassThrough();
    const connection = guardConnection(socket, limits, () => {});
    connection.on('error', () => {});
    let insideRead = false;
    let pushedInsideRead = 0;
    const read = connection.read.bind(connection);
    connection.read = (size?: number) => {
      insideRead = true;
      try {
        return read(size);
      } finally {
        insideRead = false;
      }
    };
    const push = connection.push.bind(connection);
    connection.push = (chunk: unknown, encoding?: BufferEncoding) => {
      if (insideRead) pushedInsideRead++;
      return push(chunk, encoding);
    };
    // A reader like aedes: on 'readable' it reads only when it is not busy with a batch.
    const received: Buffer[] = [];
    let busy = false;
    const readAll = () => {
      const chunk = connection.read(null as unknown as number) as Buffer | null;
      if (chunk) received.push(chunk);
    };
    connection.on('readable', () => {
      if (!busy) readAll();
    });
    const packets = Array.from({ length: 12 }, (_, i) =>
      Buffer.concat([Buffer.from([0x30, 0x80, 0x80, 0x04]), Buffer.alloc(65536, i)]),
    );
    const all = Buffer.concat(packets);
    for (let offset = 0; offset < all.length; offset += 20_000) {
      socket.write(all.subarray(offset, offset + 20_000));
      // Busy for a while (its buffer fills, the socket waits), then it reads everything at once.
      busy = true;
      await turns(3);
      busy = false;
      readAll();
    }
    await turns(100);
    readAll();
    expect(Buffer.concat(received).equals(all)).toBe(true);
    expect(pushedInsideRead).toBe(0);
    connection.destroy();
  });
});
