import { FleetError } from '../../../shared/errors/index.js';
import type { HardwareFacts } from '../../../shared/protocol/index.js';
import { BUILTIN_PROFILES } from './builtin.js';
import { type DeviceProfile, deviceProfileSchema } from './types.js';

/** The hardware facts profile rules look at. */
export type MatchFacts = Pick<HardwareFacts, 'arch' | 'cpuModel' | 'gpu' | 'cpuFlags'>;

/** Device profiles by name: the built-ins plus any the user adds (which win on name clashes). */
export class ProfileRegistry {
  private readonly profiles = new Map<string, DeviceProfile>();

  constructor(extra: unknown[] = []) {
    for (const p of BUILTIN_PROFILES) this.profiles.set(p.name, p);
    for (const p of extra) this.add(p);
  }

  /** Validates and adds (or replaces) a profile; INPUT_INVALID naming the bad field. */
  add(input: unknown): DeviceProfile {
    const result = deviceProfileSchema.safeParse(input);
    if (!result.success) {
      const issue = result.error.issues[0];
      throw new FleetError('INPUT_INVALID', `profile ${issue.path.join('.')}: ${issue.message}`);
    }
    this.profiles.set(result.data.name, result.data);
    return result.data;
  }

  get(name: string): DeviceProfile {
    const profile = this.profiles.get(name);
    if (!profile) {
      throw new FleetError('NOT_FOUND', `no profile ${name}; known: ${[...this.profiles.keys()].join(', ')}`);
    }
    return profile;
  }

  list(): DeviceProfile[] {
    return [...this.profiles.values()].sort((a, b) => a.priority - b.priority);
  }

  /** The first profile (by priority) whose rules all match the device's reported hardware. */
  match(hardware: MatchFacts): DeviceProfile | undefined {
    return this.list().find((profile) => matches(profile, hardware));
  }
}

function matches(profile: DeviceProfile, hw: MatchFacts): boolean {
  const rule = profile.match;
  const flags = new Set((hw.cpuFlags ?? []).map((f) => f.toLowerCase()));
  const hasFlag = (needle: string) => [...flags].some((f) => f.includes(needle.toLowerCase()));
  if (rule.arch && rule.arch !== hw.arch) return false;
  if (rule.cpuModelPattern && !new RegExp(rule.cpuModelPattern, 'i').test(hw.cpuModel)) return false;
  if (rule.gpuPattern && !(hw.gpu && new RegExp(rule.gpuPattern, 'i').test(hw.gpu))) return false;
  if (rule.cpuFlag && !hasFlag(rule.cpuFlag)) return false;
  if (rule.withoutCpuFlag && hasFlag(rule.withoutCpuFlag)) return false;
  return true;
}
