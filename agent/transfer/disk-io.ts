import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { FleetError, toFleetError } from '../../shared/errors/index.js';

/** ENOSPC / EDQUOT become TRANSFER_NO_SPACE; anything else keeps its code (or INTERNAL). */
export function toDiskError(error: unknown, sha256: string): FleetError {
  const errno = (error as NodeJS.ErrnoException)?.code;
  if (errno === 'ENOSPC' || errno === 'EDQUOT') {
    return new FleetError('TRANSFER_NO_SPACE', `disk full while writing artifact ${sha256}: ${errno}`, {
      sha256,
      errno,
    });
  }
  return toFleetError(error);
}

/** SHA-256 of a file, streamed in 1 MiB reads. */
export async function hashFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
