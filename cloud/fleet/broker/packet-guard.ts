import { Duplex, Transform, type TransformCallback, Writable } from 'node:stream';

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
 * The socket as aedes should see it: reads pass the frame guard, writes queue up to
 * `writeQueueBytes` before aedes is told to wait.
 */
export function guardConnection(
  socket: Duplex,
  limits: PacketLimits,
  onViolation: Violation,
  writeQueueBytes = WRITE_QUEUE_BYTES,
): Duplex {
  const guard = new MqttFrameGuard(limits, onViolation);
  socket.pipe(guard);
  const queue = new Writable({
    highWaterMark: writeQueueBytes,
    write(chunk: Buffer, _encoding, done) {
      if (socket.write(chunk)) done();
      else socket.once('drain', () => done());
    },
    final(done) {
      socket.end();
      done();
    },
  });
  const guarded = Duplex.from({ readable: guard, writable: queue });
  const destroyAll = () => {
    socket.destroy();
    guard.destroy();
    queue.destroy();
    guarded.destroy();
  };
  guard.once('error', destroyAll);
  socket.once('error', destroyAll);
  socket.once('close', destroyAll);
  return guarded;
}
