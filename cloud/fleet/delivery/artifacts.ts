import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FleetError } from '../../../shared/errors/index.js';
import { sha256Hex } from '../../../shared/hash.js';

/**
 * Content-addressed artifact store: every model file lives at <root>/<sha256[0:2]>/<sha256>,
 * written through a temporary file and a rename so that a crash never leaves a partial
 * artifact under its final name.
 */
export class ArtifactStore {
  constructor(private readonly root: string) {}

  pathOf(sha256: string): string {
    if (!/^[0-9a-f]{64}$/.test(sha256)) throw new FleetError('INPUT_INVALID', `not a sha256: ${sha256}`);
    return join(this.root, sha256.slice(0, 2), sha256);
  }

  /** Stores bytes; returns their hash and size. Idempotent. */
  async put(bytes: Uint8Array): Promise<{ sha256: string; size: number }> {
    const sha256 = sha256Hex(bytes);
    const path = this.pathOf(sha256);
    if (!(await this.has(sha256))) {
      await mkdir(join(this.root, sha256.slice(0, 2)), { recursive: true });
      const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
      await writeFile(tmp, bytes);
      await rename(tmp, path);
    }
    return { sha256, size: bytes.length };
  }

  async has(sha256: string): Promise<boolean> {
    try {
      await stat(this.pathOf(sha256));
      return true;
    } catch {
      return false;
    }
  }

  async size(sha256: string): Promise<number> {
    try {
      return (await stat(this.pathOf(sha256))).size;
    } catch {
      throw new FleetError('ARTIFACT_NOT_FOUND', `artifact ${sha256} is not in the store`, { sha256 });
    }
  }

  /** Reads bytes [start, end) of an artifact. */
  async read(sha256: string, start: number, end: number): Promise<Buffer> {
    let handle: Awaited<ReturnType<typeof open>>;
    try {
      handle = await open(this.pathOf(sha256), 'r');
    } catch {
      throw new FleetError('ARTIFACT_NOT_FOUND', `artifact ${sha256} is not in the store`, { sha256 });
    }
    try {
      const buffer = Buffer.alloc(Math.max(0, end - start));
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, start);
      return buffer.subarray(0, bytesRead);
    } finally {
      await handle.close();
    }
  }

  stream(sha256: string): NodeJS.ReadableStream {
    return createReadStream(this.pathOf(sha256));
  }

  async remove(sha256: string): Promise<void> {
    await rm(this.pathOf(sha256), { force: true });
  }
}
