import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FleetError } from '../shared/errors/index.js';
import type { AgentConfig } from './config.js';
import { writeFileAtomic } from './store/files.js';

const PINNED_CA = 'fleet-ca.pem';

/**
 * The fleet CA the agent trusts for mqtts. Given once (--ca, from the enrollment token's
 * output), it is copied into the data dir and pinned: later starts use the pinned copy, so a
 * changed --ca file cannot silently swap the trust anchor.
 */
export async function loadPinnedCa(
  config: Pick<AgentConfig, 'caFile' | 'dataDir' | 'cloudUrl'>,
): Promise<string | undefined> {
  const pinnedPath = join(config.dataDir, PINNED_CA);
  const pinned = await readFile(pinnedPath, 'utf8').catch(() => undefined);
  if (pinned) return pinned;
  // Without --ca, mqtts:// trusts the system store (a broker with a public certificate).
  if (!config.caFile) return undefined;
  let pem: string;
  try {
    pem = await readFile(config.caFile, 'utf8');
    new X509Certificate(pem);
  } catch (error) {
    throw new FleetError(
      'CONFIG_INVALID',
      `--ca ${config.caFile} is not a readable PEM certificate: ${(error as Error).message}`,
    );
  }
  await writeFileAtomic(pinnedPath, pem);
  return pem;
}
