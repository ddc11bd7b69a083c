import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { signTarget } from '../../../shared/manifest/index.js';
import type { SigningMode } from './manifests.js';
import { loadOrCreateSigningKey } from './signing-key.js';
import type { TargetSigner } from './targets.js';

/** File (in the keys directory) holding the fleet key's delegation of the online target key. */
export const TARGET_KEY_DELEGATION_FILE = 'target-key-delegation';

/**
 * How target states get signed. Online: with the fleet key itself. Offline (the fleet key stays
 * off the cloud): with an online target key kept in `<keysDir>/target-signing.json`, which the
 * fleet key certifies once (`fleetml sign --target-key`, saved as `<keysDir>/target-key-delegation`);
 * agents accept those targets only through that certificate, so without it they refuse them.
 */
export async function createTargetSigner(signing: SigningMode, keysDir: string): Promise<TargetSigner> {
  if (signing.mode === 'online') return (target) => signTarget(target, signing.keys);
  const targetKeys = await loadOrCreateSigningKey(join(keysDir, 'target-signing.json'));
  const delegation = async () =>
    (await readFile(join(keysDir, TARGET_KEY_DELEGATION_FILE), 'utf8').catch(() => '')).trim();
  let cached = await delegation();
  return (target) => {
    // Read lazily so that a delegation saved while the cloud runs takes effect.
    if (!cached) void delegation().then((d) => (cached = d));
    return signTarget(
      { ...target, signer: { publicKey: targetKeys.publicKey, delegation: cached } },
      targetKeys,
    );
  };
}
