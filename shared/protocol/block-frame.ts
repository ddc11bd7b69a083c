import { FleetError } from '../errors/index.js';
import { decodeJson } from './codec.js';
import { type BlockHeader, blockHeaderSchema } from './transfer.js';

/**
 * Binary frame for one artifact block: "FMB1", uint32 BE header length, JSON header, data.
 * Binary keeps 64 KiB blocks at 64 KiB on the wire (base64 in JSON would add a third).
 */
const MAGIC = Buffer.from('FMB1');
const MAX_HEADER_BYTES = 4096;

export function encodeBlockFrame(header: BlockHeader, data?: Uint8Array): Buffer {
  const headerBytes = Buffer.from(JSON.stringify(header));
  const prefix = Buffer.alloc(8);
  MAGIC.copy(prefix, 0);
  prefix.writeUInt32BE(headerBytes.length, 4);
  return Buffer.concat([prefix, headerBytes, data ?? Buffer.alloc(0)]);
}

export function decodeBlockFrame(frame: Uint8Array): { header: BlockHeader; data: Buffer } {
  const buf = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
  if (buf.length < 8 || !buf.subarray(0, 4).equals(MAGIC)) {
    throw new FleetError('MSG_SCHEMA', 'block frame has no FMB1 magic');
  }
  const headerLength = buf.readUInt32BE(4);
  if (headerLength > MAX_HEADER_BYTES || 8 + headerLength > buf.length) {
    throw new FleetError('MSG_SCHEMA', `block frame header length ${headerLength} is out of range`);
  }
  const header = decodeJson(blockHeaderSchema, buf.subarray(8, 8 + headerLength), MAX_HEADER_BYTES);
  return { header, data: buf.subarray(8 + headerLength) };
}
