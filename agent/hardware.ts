/**
 * The agent's hardware facts for enrollment and the cheap per-sample readings for telemetry.
 * Board facts (Raspberry Pi / Jetson model, ARM cores and features) come from the files real
 * boards expose, read under a facts root (agent/facts); systeminformation fills in only what
 * those files do not say (the GPU of a PC, a CPU on a system without /proc/cpuinfo) and is
 * loaded only then. Telemetry samples come straight from the kernel through node:os and statfs.
 * Everything is best effort: a fact that cannot be read becomes null or a neutral value.
 */
import { statfs } from 'node:fs/promises';
import { arch, cpus, freemem, hostname, platform, totalmem } from 'node:os';
import { FleetError } from '../shared/errors/index.js';
import type { ExecutionProvider, HardwareFacts } from '../shared/protocol/index.js';
import { type BoardFacts, detectBoard } from './facts/board.js';
import { FactsRoot } from './facts/root.js';

export interface HardwareFactsOptions {
  executionProviders: ExecutionProvider[];
  onnxruntimeVersion: string;
  /** Directory read instead of `/` for proc/cpuinfo, proc/device-tree/*, etc/... ('' or '/' = the real ones). */
  factsRoot?: string;
  /** The userland architecture; default the running Node's. */
  arch?: string;
}

/** The board, or PLATFORM_UNSUPPORTED when this OS cannot run the agent (32-bit ARM). */
export async function readBoardFacts(factsRoot = '/', processArch = arch()): Promise<BoardFacts> {
  const board = await detectBoard(new FactsRoot(factsRoot), processArch);
  if (board.unsupported)
    throw new FleetError('PLATFORM_UNSUPPORTED', board.unsupported, { model: board.model });
  return board;
}

export async function readHardwareFacts(options: HardwareFactsOptions): Promise<HardwareFacts> {
  const root = options.factsRoot || '/';
  const board = await readBoardFacts(root, options.arch ?? arch());
  // A facts root stands for another machine: nothing of this one may leak into its facts.
  const useHost = root === '/';
  // A board (or any ARM system) is described by its own files; a PC by systeminformation as before.
  const boardSpeaks =
    board.cpuModel !== null && (board.kind !== 'other' || board.armCores.length > 0 || !useHost);
  const si = useHost && !boardSpeaks ? await hostFacts() : null;
  const flags = si ? si.flags : board.cpuFeatures;
  return {
    hostname: hostname().slice(0, 255),
    arch: options.arch ?? arch(),
    platform: platform(),
    cpuModel: ((si ? si.cpuModel : board.cpuModel) ?? 'unknown').slice(0, 255),
    cpuCores: Math.max(1, (si ? si.cores : board.cpuCores) ?? 1),
    memoryBytes: board.memoryBytes ?? totalmem(),
    gpu: (board.gpu ?? si?.gpu ?? null)?.slice(0, 255) ?? null,
    executionProviders: options.executionProviders,
    onnxruntimeVersion: options.onnxruntimeVersion,
    nodeVersion: process.versions.node,
    cpuFlags: flags.filter((f) => f.length > 0 && f.length <= 32).slice(0, 512),
  };
}

async function hostFacts(): Promise<{
  cpuModel: string | null;
  cores: number;
  gpu: string | null;
  flags: string[];
}> {
  const { default: si } = await import('systeminformation');
  const [cpu, graphics, flags] = await Promise.all([
    si.cpu().catch(() => null),
    si.graphics().catch(() => null),
    si.cpuFlags().catch(() => ''),
  ]);
  return {
    cpuModel: cpu ? [cpu.manufacturer, cpu.brand].filter(Boolean).join(' ') || null : null,
    cores: cpu?.cores ?? 1,
    gpu:
      graphics?.controllers.map((c) => [c.vendor, c.model].filter(Boolean).join(' ')).find(Boolean) ?? null,
    flags: flags.split(/\s+/).filter((f) => f.length > 0),
  };
}

export interface SystemSample {
  /** Whole-machine CPU load since the previous sample, percent 0..100. */
  cpuLoad: number;
  /** Per-core load, percent. */
  cpuLoadPerCore: number[];
  memUsedBytes: number;
  memTotalBytes: number;
  /** Free bytes on the file system holding `diskPath`; null when unknown. */
  diskFreeBytes: number | null;
}

type CoreTimes = { busy: number; total: number }[];

function coreTimes(): CoreTimes {
  return cpus().map(({ times }) => {
    const busy = times.user + times.nice + times.sys + times.irq;
    return { busy, total: busy + times.idle };
  });
}

/**
 * CPU load from the kernel's per-core counters since this sampler's previous reading (the
 * first: since boot). One per agent: two agents in one process must not steal each other's
 * intervals.
 */
export class CpuLoadSampler {
  private previous: CoreTimes | null = null;

  sample(now: CoreTimes = coreTimes()): { cpuLoad: number; cpuLoadPerCore: number[] } {
    const before =
      this.previous && this.previous.length === now.length
        ? this.previous
        : now.map(() => ({ busy: 0, total: 0 }));
    this.previous = now;
    const perCore = now.map((c, i) => {
      const total = c.total - before[i].total;
      return total > 0 ? clampPercent(((c.busy - before[i].busy) / total) * 100) : 0;
    });
    const busy = now.reduce((a, c, i) => a + c.busy - before[i].busy, 0);
    const total = now.reduce((a, c, i) => a + c.total - before[i].total, 0);
    return { cpuLoad: total > 0 ? clampPercent((busy / total) * 100) : 0, cpuLoadPerCore: perCore };
  }
}

export async function sampleSystem(diskPath: string, cpu: CpuLoadSampler): Promise<SystemSample> {
  const load = cpu.sample();
  const disk = await statfs(diskPath).catch(() => null);
  const memTotal = totalmem();
  return {
    ...load,
    // os.freemem() is MemAvailable on Linux: what a new process could get without swapping.
    memUsedBytes: memTotal - freemem(),
    memTotalBytes: memTotal,
    diskFreeBytes: disk ? disk.bavail * disk.bsize : null,
  };
}

function clampPercent(value: number | undefined): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) return 0;
  return Math.min(100, Math.max(0, Math.round(value * 100) / 100));
}
