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

/** The socket as aedes should see it: reads pass the frame guard, writes go straight out. */
export function guardConnection(socket: Duplex, limits: PacketLimits, onViolation: Violation): Duplex {
  const guard = new MqttFrameGuard(limits, onViolation);
  socket.pipe(guard);
  const guarded = Duplex.from({ readable: guard, writable: socket });
  const destroyAll = () => {
    socket.destroy();
    guard.destroy();
    guarded.destroy();
  };
  guard.once('error', destroyAll);
  socket.once('error', destroyAll);
  socket.once('close', destroyAll);
  return guarded;
}
