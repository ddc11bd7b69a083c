/**
 * Which CPU an INT8 model is built for, as far as the quantizer's choices depend on it.
 *
 * Why it matters: onnxruntime's MLAS runs U8S8 and S8S8 integer GEMMs and convolutions on x86
 * without VNNI with `vpmaddubsw`, which adds each pair of u8 × s8 products into an int16 with
 * saturation: 2 · 255 · 127 = 64770 does not fit in 32767. Weights limited to 7 bits
 * (|w| ≤ 63, 2 · 255 · 63 = 32130) never saturate; this is onnxruntime's `reduce_range`, which
 * its quantization docs recommend for x86 without VNNI. VNNI (`vpdpbusd`) accumulates into
 * int32 directly, and the ARM kernels widen before adding, so they keep full 8-bit weights.
 */
import { readFileSync } from 'node:fs';
import { ProfileRegistry } from '../profiles/registry.js';
import type { DeviceProfile } from '../profiles/types.js';

/** The CPU facts the quantizer looks at (the subset of the agent's hardware facts it needs). */
export interface CpuFacts {
  /** `process.arch` of the machine: x64, arm64, … */
  arch: string;
  cpuModel: string;
  /** x86 `flags` or ARM `Features` from /proc/cpuinfo, lower case. */
  cpuFlags: string[];
  gpu: string | null;
}

/** `true`/`false` force 7-bit weights on or off; `'host'` decides from this machine's CPU. */
export type ReduceRange = boolean | 'host';

/** Model name and feature flags of the first processor listed in /proc/cpuinfo text. */
export function parseCpuinfo(text: string): { cpuModel: string; cpuFlags: string[] } {
  const field = (name: string) =>
    text
      .split('\n')
      .find((line) => line.split(':')[0].trim().toLowerCase() === name)
      ?.split(':')
      .slice(1)
      .join(':')
      .trim();
  const flags = field('flags') ?? field('features') ?? '';
  return {
    cpuModel: field('model name') ?? field('hardware') ?? field('cpu part') ?? '',
    cpuFlags: flags.toLowerCase().split(/\s+/).filter(Boolean),
  };
}

/** avx512_vnni, avx_vnni (also spelt avxvnni by some kernels), avx_vnni_int8, … */
export function hasVnni(flags: readonly string[]): boolean {
  return flags.some((f) => f.includes('vnni'));
}

/** Whether U8S8/S8S8 integer kernels on this CPU can saturate with full 8-bit weights. */
export function saturatesWith8BitWeights(cpu: Pick<CpuFacts, 'arch' | 'cpuFlags'>): boolean {
  return cpu.arch === 'x64' && !hasVnni(cpu.cpuFlags);
}

let host: CpuFacts | undefined;

/** This machine's CPU facts (read once, on first use; empty flags when /proc/cpuinfo is absent). */
export function hostCpu(): CpuFacts {
  if (!host) {
    let text = '';
    try {
      text = readFileSync('/proc/cpuinfo', 'utf8');
    } catch {
      // Not Linux: no flags, so no profile rule based on them can match.
    }
    host = { arch: process.arch, gpu: null, ...parseCpuinfo(text) };
  }
  return host;
}

/** The built-in profile this machine matches (x86-avx2, x86-vnni, …), if any. */
export function hostProfile(cpu: CpuFacts = hostCpu()): DeviceProfile | undefined {
  return new ProfileRegistry().match(cpu);
}

/** Resolves a ReduceRange option: `'host'` asks the built-in profile this machine matches. */
export function resolveReduceRange(value: ReduceRange, cpu?: CpuFacts): boolean {
  if (value !== 'host') return value;
  const facts = cpu ?? hostCpu();
  return hostProfile(facts)?.int8.reduceRange ?? saturatesWith8BitWeights(facts);
}

/** Weight bits for a resolved reduce-range choice: 7 (|w| ≤ 63) or 8 (|w| ≤ 127). */
export function weightBits(reduceRange: boolean): 7 | 8 {
  return reduceRange ? 7 : 8;
}

/** The INT8 choices a device profile asks for, as options of the static and dynamic quantizers. */
export function int8OptionsFor(profile: DeviceProfile): {
  activationType: 'uint8' | 'int8';
  symmetricActivations: boolean;
  perChannel: boolean;
  reduceRange: boolean;
} {
  return {
    activationType: profile.int8.activations,
    symmetricActivations: profile.int8.symmetricActivations,
    perChannel: profile.int8.perChannel,
    reduceRange: profile.int8.reduceRange,
  };
}

/**
 * Whether latency measured on this machine may decide per-op float/int8 choices for `profile`:
 * only for profiles that take measured decisions and run on this machine's architecture (an
 * x86 cloud's kernels say nothing about a Raspberry Pi's or TensorRT's).
 */
export function hostMeasurementsApply(profile: DeviceProfile, cpu: CpuFacts = hostCpu()): boolean {
  return profile.int8.decisions === 'measured' && profile.arch === cpu.arch;
}
