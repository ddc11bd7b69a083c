import { FleetError } from '../../shared/errors/index.js';
import { ProfileRegistry } from '../compression/profiles/registry.js';
import type { DeviceProfile } from '../compression/profiles/types.js';
import { hostMeasurementsApply, hostProfile, int8OptionsFor } from '../compression/quantize/target.js';
import { numberOption } from './number-option.js';
import type { QuantizeFlags } from './quantize.js';

/** What `fleetml quantize` builds for: the profile, its INT8 options, batch and whether to tune. */
export interface QuantizeTarget {
  /** Profile name, or `process.arch` when this machine matches none. */
  name: string;
  activationType: 'uint8' | 'int8';
  symmetricActivations: boolean;
  perChannel: boolean;
  reduceRange: boolean;
  batch: number;
  /** Per-op latency tuning on this machine applies to the target (x86 profiles on x86). */
  tuneHere: boolean;
  /** The target runs onnxruntime's x86 kernels (x86-only rewrites apply). */
  x86: boolean;
}

/** Resolves `--profile` (default: this machine's), `--activations`, `--per-channel` and `--batch`. */
export function resolveTarget(flags: QuantizeFlags): QuantizeTarget {
  const profile: DeviceProfile | undefined = flags.profile
    ? new ProfileRegistry().get(flags.profile)
    : hostProfile();
  if (flags.activations !== undefined && flags.activations !== 'uint8' && flags.activations !== 'int8')
    throw new FleetError('INPUT_INVALID', `--activations must be uint8 or int8, got '${flags.activations}'`);
  const base = profile
    ? int8OptionsFor(profile)
    : { activationType: 'uint8' as const, symmetricActivations: false, perChannel: true, reduceRange: false };
  const batch = numberOption(flags.batch, '--batch', 1) ?? profile?.batch ?? 1;
  if (!Number.isInteger(batch))
    throw new FleetError('INPUT_INVALID', `--batch must be an integer, got '${flags.batch}'`);
  return {
    name: profile?.name ?? process.arch,
    ...base,
    activationType: (flags.activations as 'uint8' | 'int8' | undefined) ?? base.activationType,
    perChannel: flags.perChannel && base.perChannel,
    batch,
    tuneHere: profile ? hostMeasurementsApply(profile) : true,
    x86: (profile?.arch ?? process.arch) === 'x64',
  };
}
