import { mkdir, open, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256Hex } from '../../../shared/hash.js';
import {
  type ArtifactStat,
  type ArtifactStore,
  artifactNotFound,
  assertSha256,
  type ByteRange,
} from './artifacts.js';

/**
 * The artifact store as a directory: every artifact lives at <root>/<sha256[0:2]>/<sha256>,
 * written through a temporary file and a rename, so that a crash never leaves a partial
 * artifact under its final name and two replicas writing the same bytes at once both succeed
 * (the rename is atomic; the loser replaces identical bytes). Replicas share it by pointing
 * `--artifacts-dir` at the same directory (one host, or a network file system).
 */
export class LocalArtifactStore implements ArtifactStore {
  constructor(private readonly root: string) {}

  get location(): string {
    return this.root;
  }

  pathOf(sha256: string): string {
    assertSha256(sha256);
    return join(this.root, sha256.slice(0, 2), sha256);
  }

  async put(bytes: Uint8Array): Promise<ArtifactStat> {
    const sha256 = sha256Hex(bytes);
    const path = this.pathOf(sha256);
    if (!(await this.has(sha256))) {
      await mkdir(join(this.root, sha256.slice(0, 2)), { recursive: true });
      const tmp = `${path}.tmp-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;
      await writeFile(tmp, bytes);
      await rename(tmp, path);
    }
    return { sha256, size: bytes.length };
  }

  async has(sha256: string): Promise<boolean> {
    return (await this.stat(sha256)) !== null;
  }

  async stat(sha256: string): Promise<ArtifactStat | null> {
    try {
      return { sha256, size: (await stat(this.pathOf(sha256))).size };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw error;
    }
  }

  async get(sha256: string, range?: ByteRange): Promise<Buffer> {
    let handle: Awaited<ReturnType<typeof open>>;
    try {
      handle = await open(this.pathOf(sha256), 'r');
    } catch {
      throw artifactNotFound(sha256);
    }
    try {
      const start = range?.start ?? 0;
      const end = range?.end ?? (await handle.stat()).size;
      const buffer = Buffer.alloc(Math.max(0, end - start));
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, start);
      return buffer.subarray(0, bytesRead);
    } finally {
      await handle.close();
    }
  }

  async delete(sha256: string): Promise<void> {
    await rm(this.pathOf(sha256), { force: true });
  }

  async localPath(sha256: string): Promise<string> {
    if (!(await this.has(sha256))) throw artifactNotFound(sha256);
    return this.pathOf(sha256);
  }
}
