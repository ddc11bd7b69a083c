import { Duplex, Transform, type TransformCallback } from 'node:stream';

export interface PacketLimits {
  /** Largest first packet (the CONNECT, sent before the client is authenticated), in bytes. */
  firstPacketBytes: number;
  /** Largest later packet, in bytes. */
  packetBytes: number;
}

type Violation = (declaredBytes: number, limit: number) => void;

/**
 * Reads MQTT fixed headers as bytes pass and stops a connection whose packet declares a
 * remaining length over the limit, before the body arrives: aedes buffers a whole packet
 * before parsing it, so without this a client could make it hold 256 MB per connection
 * without ever authenticating.
 */
export class MqttFrameGuard extends Transform {
  private packets = 0;
  private state: 'type' | 'length' | 'body' = 'type';
  private length = 0;
  private multiplier = 1;
  private remaining = 0;

  constructor(
    private readonly limits: PacketLimits,
    private readonly onViolation: Violation,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.state === 'body') {
        const take = Math.min(this.remaining, chunk.length - i);
        this.remaining -= take;
        i += take;
        if (this.remaining === 0) this.state = 'type';
      } else if (this.state === 'type') {
        this.state = 'length';
        this.length = 0;
        this.multiplier = 1;
        i++;
      } else {
        const byte = chunk[i++];
        this.length += (byte & 0x7f) * this.multiplier;
        this.multiplier *= 128;
        if (byte & 0x80) {
          if (this.multiplier >= 128 ** 4) {
            done(new Error('malformed MQTT remaining length'));
            return;
          }
          continue;
        }
        const limit = this.packets === 0 ? this.limits.firstPacketBytes : this.limits.packetBytes;
        this.packets++;
        if (this.length > limit) {
          this.onViolation(this.length, limit);
          done(new Error(`MQTT packet of ${this.length} bytes over the limit of ${limit}`));
          return;
        }
        this.remaining = this.length;
        this.state = this.remaining === 0 ? 'type' : 'body';
      }
    }
    done(null, chunk);
  }
}

/**
 * Bytes a connection may have waiting to go out before aedes sees backpressure on it. aedes
 * stops handling a publisher's packets until every subscriber's socket has drained; with a
 * socket's own 16 KiB mark, one 64 KiB block to a slow device stalls the cloud's connection,
 * and with the cloud's and the device's connections both full (the device's mqtt.js stops
 * reading until its own writes drain) the broker deadlocks: seen with 1,000 simulated devices
 * on a loaded machine. A per-connection queue like Mosquitto's breaks the cycle; a device asks
 * for at most a window of blocks at a time, so its queue stays far below this.
 */
export const WRITE_QUEUE_BYTES = 8 * 1024 * 1024;

/**
 * One client's connection as aedes sees it (guardConnection). A Duplex of its own rather than
 * `Duplex.from({ readable, writable })`: that one reports an AbortError ("The operation was
 * aborted") whenever it is destroyed before both halves have ended, which is how a client that
 * goes away ends (an agent closing its enrollment connection), so each such close was logged
 * as a client error. Here a closed socket ends the connection quietly; only what the frame guard
 * refuses reaches aedes as an error. Destroying the connection (aedes closing a client) closes
 * the socket.
 *
 * It pushes only from the guard's 'data' events, never from inside read() (its _read only
 * resumes the guard, which flows on a later tick). aedes reads a connection on 'readable' and,
 * once the packets it read are handled, with read(); Duplex.from's _read pulled from the guard
 * synchronously, and a push made inside that read() could leave the stream believing a
 * 'readable' was on its way. When that read ended in the middle of a large packet, aedes waited
 * for a 'readable' that never came and never read the connection again: the cloud's
 * connection, busy with 64 KiB blocks, stalled a rollout to 1,000 simulated devices on the
 * embedded broker (write-queue.test.ts checks that nothing is pushed inside read()).
 */
class GuardedConnection extends Duplex {
  /** The write waiting for the socket to drain; released when the connection goes. */
  private waiting: (() => void) | undefined;

  constructor(
    private readonly socket: Duplex,
    private readonly guard: MqttFrameGuard,
    private readonly writeQueueBytes: number,
  ) {
    super();
    socket.pipe(guard);
    guard.on('data', (chunk: Buffer) => {
      if (!this.push(chunk)) guard.pause();
    });
    guard.once('end', () => this.push(null));
    guard.once('error', (error) => this.destroy(error));
    // A reset or a close by the peer is the end of the connection, not a fault of the broker.
    socket.once('error', () => this.destroy());
    socket.once('close', () => this.destroy());
  }

  override _read(): void {
    this.guard.resume();
  }

  /** The socket buffers the bytes; the writer is let go at once while it holds under the bound. */
  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    const below = this.socket.write(chunk);
    // 'drain' comes only after a write the socket refused (over its own mark).
    if (below || this.socket.writableLength < this.writeQueueBytes) {
      done();
      return;
    }
    this.waiting = () => {
      this.waiting = undefined;
      done();
    };
    this.socket.once('drain', this.waiting);
  }

  override _final(done: (error?: Error | null) => void): void {
    this.socket.end();
    done();
  }

  override _destroy(error: Error | null, done: (error?: Error | null) => void): void {
    this.socket.destroy();
    this.guard.destroy();
    if (this.waiting) this.socket.removeListener('drain', this.waiting);
    this.waiting?.();
    done(error);
  }
}

/**
 * The socket as aedes should see it: reads pass the frame guard, writes queue up to
 * `writeQueueBytes` before aedes is told to wait (see GuardedConnection).
 */
export function guardConnection(
  socket: Duplex,
  limits: PacketLimits,
  onViolation: Violation,
  writeQueueBytes = WRITE_QUEUE_BYTES,
): Duplex {
  return new GuardedConnection(socket, new MqttFrameGuard(limits, onViolation), writeQueueBytes);
}
