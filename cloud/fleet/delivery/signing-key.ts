import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { FleetError } from '../../../shared/errors/index.js';
import { type FleetKeyPair, generateFleetKeyPair } from '../../../shared/manifest/index.js';

/**
 * The fleet's manifest-signing key pair, kept in its own file (mode 600) apart from the
 * database, so that it can be moved offline. Created on first start.
 */
export async function loadOrCreateSigningKey(path: string): Promise<FleetKeyPair> {
  try {
    const parsed = JSON.parse(await readFile(path, 'utf8')) as FleetKeyPair;
    if (typeof parsed.publicKey !== 'string' || typeof parsed.privateKey !== 'string') {
      throw new Error('missing publicKey or privateKey');
    }
    return parsed;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new FleetError(
        'CONFIG_INVALID',
        `signing key ${path} is unreadable: ${(error as Error).message}`,
      );
    }
  }
  const keys = generateFleetKeyPair();
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  await writeFile(path, `${JSON.stringify(keys)}\n`, { mode: 0o600 });
  await chmod(path, 0o600);
  return keys;
}
