import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FleetError } from '../../../shared/errors/index.js';
import { signTarget, verifyTargetKeyDelegation } from '../../../shared/manifest/index.js';
import type { TargetState } from '../../../shared/protocol/index.js';
import type { SigningMode } from './manifests.js';
import { loadOrCreateSigningKey } from './signing-key.js';

/** File (in the keys directory) holding the fleet key's delegation of the online target key. */
export const TARGET_KEY_DELEGATION_FILE = 'target-key-delegation';

/**
 * How target states get signed. Online: with the fleet key itself. Offline (the fleet key stays
 * off the cloud): with an online target key kept in `<keysDir>/target-signing.json`, which the
 * fleet key certifies once (`fleetml keys delegate`, attached with `fleetml manifests
 * delegate-target-key`); agents accept those targets only through that certificate, so until it
 * is attached they refuse them.
 */
export class TargetSigning {
  private constructor(
    private readonly signing: SigningMode,
    private readonly keysDir: string,
    private readonly targetKeys: { publicKey: string; privateKey: string } | null,
    private delegation: string,
  ) {}

  static async create(signing: SigningMode, keysDir: string): Promise<TargetSigning> {
    if (signing.mode === 'online') return new TargetSigning(signing, keysDir, null, '');
    const targetKeys = await loadOrCreateSigningKey(join(keysDir, 'target-signing.json'));
    const delegation = (
      await readFile(join(keysDir, TARGET_KEY_DELEGATION_FILE), 'utf8').catch(() => '')
    ).trim();
    return new TargetSigning(signing, keysDir, targetKeys, delegation);
  }

  /** Offline: the target key to certify and whether its certificate is attached; online: null. */
  status(): { publicKey: string; delegated: boolean } | null {
    return this.targetKeys
      ? { publicKey: this.targetKeys.publicKey, delegated: this.delegation !== '' }
      : null;
  }

  /** Stores the fleet key's certificate of the target key after checking it (TARGET_SIGNATURE). */
  async attachDelegation(signature: string): Promise<void> {
    if (this.signing.mode !== 'offline' || !this.targetKeys) {
      throw new FleetError(
        'CONFLICT',
        'the cloud signs targets with the fleet key itself: nothing to delegate',
      );
    }
    verifyTargetKeyDelegation(this.targetKeys.publicKey, signature, this.signing.publicKey);
    await writeFile(join(this.keysDir, TARGET_KEY_DELEGATION_FILE), `${signature}\n`, { mode: 0o600 });
    this.delegation = signature;
  }

  sign = (target: Omit<TargetState, 'signature'>): TargetState => {
    if (this.signing.mode === 'online') return signTarget(target, this.signing.keys);
    const keys = this.targetKeys!;
    return signTarget(
      { ...target, signer: { publicKey: keys.publicKey, delegation: this.delegation } },
      keys,
    );
  };
}
