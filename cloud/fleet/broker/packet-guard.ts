import { Duplex } from 'node:stream';

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
export class MqttFrameMeter {
  private packets = 0;
  private state: 'type' | 'length' | 'body' = 'type';
  private length = 0;
  private multiplier = 1;
  private remaining = 0;

  constructor(
    private readonly limits: PacketLimits,
    private readonly onViolation: Violation,
  ) {}

  /** Follows the packets in `chunk`; throws on a length over the limit or a malformed one. */
  check(chunk: Buffer): void {
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
          if (this.multiplier >= 128 ** 4) throw new Error('malformed MQTT remaining length');
          continue;
        }
        this.endOfHeader();
      }
    }
  }

  private endOfHeader(): void {
    const limit = this.packets === 0 ? this.limits.firstPacketBytes : this.limits.packetBytes;
    this.packets++;
    if (this.length > limit) {
      this.onViolation(this.length, limit);
      throw new Error(`MQTT packet of ${this.length} bytes over the limit of ${limit}`);
    }
    this.remaining = this.length;
    this.state = this.remaining === 0 ? 'type' : 'body';
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
 * The socket as aedes should see it: reads pass the frame meter, writes queue up to
 * `writeQueueBytes` before aedes is told to wait.
 *
 * Data is pushed only from the socket's 'data' events, never from inside read(). aedes reads a
 * connection on 'readable' and, once the packets it read are handled, with read(); a push made
 * inside that read() (what a piped Transform behind Duplex.from did: its _read pulls from the
 * Transform synchronously) can schedule a 'readable' that finds the buffer already emptied,
 * which leaves the stream believing a 'readable' is on its way. When that read ended in the
 * middle of a large packet, aedes waited for a 'readable' that never came and never read the
 * connection again: the cloud's connection, busy with 64 KiB blocks, stalled a rollout to
 * 1,000 simulated devices (its buffer full, every other connection idle).
 */
class GuardedConnection extends Duplex {
  constructor(
    private readonly socket: Duplex,
    limits: PacketLimits,
    onViolation: Violation,
    writeQueueBytes: number,
  ) {
    super({ writableHighWaterMark: writeQueueBytes });
    const meter = new MqttFrameMeter(limits, onViolation);
    socket.on('data', (chunk: Buffer) => {
      try {
        meter.check(chunk);
      } catch (error) {
        this.destroy(error as Error);
        return;
      }
      if (!this.push(chunk)) socket.pause();
    });
    socket.on('end', () => this.push(null));
    socket.on('error', (error) => this.destroy(error));
    socket.on('close', () => this.destroy());
  }

  override _read(): void {
    this.socket.resume(); // asynchronous: the next 'data' comes after this read() returned
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    if (this.socket.write(chunk)) done();
    else this.socket.once('drain', () => done());
  }

  override _final(done: (error?: Error | null) => void): void {
    this.socket.end();
    done();
  }

  override _destroy(error: Error | null, done: (error?: Error | null) => void): void {
    this.socket.destroy();
    done(error);
  }
}

export function guardConnection(
  socket: Duplex,
  limits: PacketLimits,
  onViolation: Violation,
  writeQueueBytes = WRITE_QUEUE_BYTES,
): Duplex {
  return new GuardedConnection(socket, limits, onViolation, writeQueueBytes);
}
