import { parseCpuInfo } from './cpuinfo.js';
import type { FactsRoot } from './root.js';

/** What a board exposes about itself, read from the files real boards have. */
export interface BoardFacts {
  kind: 'raspberry-pi' | 'jetson' | 'other';
  /** /proc/device-tree/model (or the Pi kernel's cpuinfo Model line), e.g. Raspberry Pi 5 Model B Rev 1.0. */
  model: string | null;
  /** /proc/device-tree/compatible, most specific first (raspberrypi,5-model-b, brcm,bcm2712). */
  compatible: string[];
  /** A description the cloud's profiles match on: "<board> (4x Cortex-A76)"; null without cpuinfo. */
  cpuModel: string | null;
  cpuCores: number | null;
  /** ARM `Features` (asimddp = dot product, i8mm = int8 matrix multiply) or x86 `flags`. */
  cpuFeatures: string[];
  armCores: string[];
  /** Jetson's Linux for Tegra release from /etc/nv_tegra_release, e.g. R36.4.0. */
  l4tRelease: string | null;
  /** The Jetson's integrated GPU, e.g. NVIDIA Tegra234 Orin (Ampere GPU), L4T R36.4.0. */
  gpu: string | null;
  /** MemTotal from /proc/meminfo. */
  memoryBytes: number | null;
  /** Why this system cannot run the agent (a 32-bit ARM OS); null when it can. */
  unsupported: string | null;
}

const TEGRA_SOCS: Record<string, string> = {
  tegra234: 'Tegra234 Orin (Ampere GPU)',
  tegra194: 'Tegra194 Xavier (Volta GPU)',
  tegra186: 'Tegra186 TX2 (Pascal GPU)',
  tegra210: 'Tegra210 TX1/Nano (Maxwell GPU)',
};

export const THIRTY_TWO_BIT_REFUSAL =
  'this is a 32-bit ARM operating system (armv7l/armhf): onnxruntime-node has no 32-bit ARM build, ' +
  'so the fleetml agent cannot run here. Install the 64-bit OS (Raspberry Pi OS (64-bit), arm64, ' +
  'from Raspberry Pi Imager; any Pi 3, 4, 5 or Zero 2 runs it) and then the arm64 agent bundle.';

/**
 * Board detection from what Raspberry Pi and Jetson boards expose: the device tree, the CPU
 * part numbers and features in /proc/cpuinfo, /etc/nv_tegra_release, /proc/meminfo and
 * /etc/os-release. `processArch` is the running Node's arch (userland), which on a real 32-bit
 * OS is 'arm' even under a 64-bit kernel.
 */
export async function detectBoard(root: FactsRoot, processArch: string = process.arch): Promise<BoardFacts> {
  const [cpuinfoText, dtModel, compatible, tegra, meminfo, osRelease] = await Promise.all([
    root.text('proc/cpuinfo'),
    root.deviceTreeStrings('model'),
    root.deviceTreeStrings('compatible'),
    root.text('etc/nv_tegra_release'),
    root.text('proc/meminfo'),
    root.text('etc/os-release'),
  ]);
  const cpu = cpuinfoText === null ? null : parseCpuInfo(cpuinfoText);
  const model = dtModel[0] ?? cpu?.boardModel ?? null;
  const l4tRelease = tegra === null ? null : parseL4t(tegra);
  const soc = compatible.map((c) => /^nvidia,(tegra\d+)$/.exec(c)?.[1]).find(Boolean);
  const isJetson = tegra !== null || soc !== undefined;
  const isPi =
    !isJetson && (/raspberry pi/i.test(model ?? '') || compatible.some((c) => c.startsWith('raspberrypi,')));
  const kind = isJetson ? 'jetson' : isPi ? 'raspberry-pi' : 'other';
  return {
    kind,
    model,
    compatible,
    cpuModel: cpu && cpu.cores > 0 ? describeCpu(model, cpu.cores, cpu.armCores, cpu.modelName) : null,
    cpuCores: cpu && cpu.cores > 0 ? cpu.cores : null,
    cpuFeatures: cpu?.features ?? [],
    armCores: cpu?.armCores ?? [],
    l4tRelease,
    gpu: isJetson ? jetsonGpu(soc, l4tRelease) : null,
    memoryBytes: parseMemTotal(meminfo),
    unsupported: isThirtyTwoBitArm(processArch, cpu?.armArchitecture ?? null, osRelease)
      ? THIRTY_TWO_BIT_REFUSAL
      : null,
  };
}

function describeCpu(
  model: string | null,
  cores: number,
  armCores: string[],
  modelName: string | null,
): string {
  const cpu = armCores.length > 0 ? `${cores}x ${armCores.join('+')}` : (modelName ?? `${cores} cores`);
  return (model ? `${model} (${cpu})` : cpu).slice(0, 255);
}

/** "# R36 (release), REVISION: 4.0, GCID: ..." -> R36.4.0 */
function parseL4t(text: string): string | null {
  const m = /#\s*R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)/.exec(text);
  return m ? `R${m[1]}.${m[2]}` : 'unknown release';
}

function jetsonGpu(soc: string | undefined, l4t: string | null): string {
  const chip = soc ? (TEGRA_SOCS[soc] ?? soc) : 'Tegra';
  return `NVIDIA ${chip}${l4t ? `, L4T ${l4t}` : ''}`;
}

function parseMemTotal(text: string | null): number | null {
  const m = text ? /^MemTotal:\s+(\d+)\s*kB/m.exec(text) : null;
  return m ? Number(m[1]) * 1024 : null;
}

/** A 32-bit userland (Node says 'arm'), a 32-bit ARMv7 kernel, or Raspbian (the armhf Pi OS). */
function isThirtyTwoBitArm(
  processArch: string,
  armArchitecture: number | null,
  osRelease: string | null,
): boolean {
  if (processArch === 'arm') return true;
  if (armArchitecture !== null && armArchitecture < 8) return true;
  return osRelease !== null && /^ID="?raspbian"?$/m.test(osRelease);
}
