/**
 * /proc/cpuinfo as Linux writes it on ARM (arm64 and 32-bit kernels) and x86: one block per
 * processor of `key\t: value` lines, plus board lines (Revision, Serial, Model) on Raspberry Pi.
 */
export interface CpuInfo {
  /** Processor blocks found (the number of online cores). */
  cores: number;
  /** ARM core names from `CPU implementer` + `CPU part` (e.g. Cortex-A76), distinct, in order. */
  armCores: string[];
  /** `CPU architecture` of the first processor: 8 on arm64 kernels, 7 on 32-bit ARMv7 kernels. */
  armArchitecture: number | null;
  /** `Features` (ARM) or `flags` (x86) of the first processor, e.g. asimddp, i8mm, avx512_vnni. */
  features: string[];
  /** x86 `model name`, or the ARMv7 kernel's `model name` (ARMv7 Processor rev 3 (v7l)). */
  modelName: string | null;
  /** Raspberry Pi kernels add `Model : Raspberry Pi 4 Model B Rev 1.4` and `Hardware`. */
  boardModel: string | null;
  hardware: string | null;
}

// ARM Ltd. (implementer 0x41) part numbers from the Technical Reference Manuals' MIDR tables.
const ARM_PARTS: Record<string, string> = {
  '0xd03': 'Cortex-A53',
  '0xd04': 'Cortex-A35',
  '0xd05': 'Cortex-A55',
  '0xd07': 'Cortex-A57',
  '0xd08': 'Cortex-A72',
  '0xd09': 'Cortex-A73',
  '0xd0a': 'Cortex-A75',
  '0xd0b': 'Cortex-A76',
  '0xd0c': 'Neoverse-N1',
  '0xd0d': 'Cortex-A77',
  '0xd40': 'Neoverse-V1',
  '0xd41': 'Cortex-A78',
  '0xd42': 'Cortex-A78AE',
  '0xd44': 'Cortex-X1',
  '0xd46': 'Cortex-A510',
  '0xd47': 'Cortex-A710',
  '0xd48': 'Cortex-X2',
  '0xd49': 'Neoverse-N2',
  '0xd4b': 'Cortex-A78C',
};

/** The name of an ARM core from its MIDR fields; unknown ones keep their numbers. */
export function armCoreName(implementer: string, part: string): string {
  const p = part.toLowerCase();
  if (implementer.toLowerCase() === '0x41' && ARM_PARTS[p]) return ARM_PARTS[p];
  return `ARM core ${implementer.toLowerCase()}/${p}`;
}

export function parseCpuInfo(text: string): CpuInfo {
  const blocks: Record<string, string>[] = [];
  const board: Record<string, string> = {};
  let current: Record<string, string> | null = null;
  for (const line of text.split('\n')) {
    const match = /^([^:]+?)\s*:\s?(.*)$/.exec(line);
    if (!match) continue;
    const [, key, value] = match;
    if (key === 'processor') {
      current = {};
      blocks.push(current);
    } else if (['Revision', 'Serial', 'Model', 'Hardware'].includes(key)) {
      board[key] = value.trim();
    } else if (current) {
      current[key] = value.trim();
    }
  }
  const first = blocks[0] ?? {};
  const armCores = [
    ...new Set(
      blocks
        .filter((b) => b['CPU implementer'] && b['CPU part'])
        .map((b) => armCoreName(b['CPU implementer'], b['CPU part'])),
    ),
  ];
  const arch = Number.parseInt(first['CPU architecture'] ?? '', 10);
  return {
    cores: blocks.length,
    armCores,
    armArchitecture: Number.isFinite(arch) ? arch : null,
    features: (first.Features ?? first.flags ?? '').split(/\s+/).filter((f) => f.length > 0),
    modelName: first['model name'] ?? null,
    boardModel: board.Model ?? null,
    hardware: board.Hardware ?? null,
  };
}
