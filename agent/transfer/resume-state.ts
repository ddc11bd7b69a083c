import { rm } from 'node:fs/promises';
import { z } from 'zod';
import { readJsonFile, writeFileAtomic } from '../store/files.js';
import { BlockBitmap } from './bitmap.js';

/**
 * Resume state beside the temporary file: which blocks are on disk. It only ever claims
 * blocks whose bytes were fsynced before it was written, so after `kill -9` the device asks
 * again for at most the blocks received since the last flush.
 */
const resumeSchema = z.object({
  sha256: z.string(),
  size: z.number().int().positive(),
  blockSize: z.number().int().positive(),
  bitmap: z.string(),
});

export interface ResumeKey {
  sha256: string;
  size: number;
  blockSize: number;
}

export async function loadResumeState(
  path: string,
  key: ResumeKey,
  total: number,
): Promise<BlockBitmap | null> {
  const value = await readJsonFile(path).catch(() => undefined);
  const parsed = resumeSchema.safeParse(value);
  if (!parsed.success) return null;
  const s = parsed.data;
  if (s.sha256 !== key.sha256 || s.size !== key.size || s.blockSize !== key.blockSize) return null;
  return BlockBitmap.fromBase64(total, s.bitmap);
}

export async function saveResumeState(path: string, key: ResumeKey, bitmap: BlockBitmap): Promise<void> {
  await writeFileAtomic(path, JSON.stringify({ ...key, bitmap: bitmap.toBase64() }));
}

export async function clearResumeState(...paths: string[]): Promise<void> {
  await Promise.all(paths.map((p) => rm(p, { force: true })));
}
