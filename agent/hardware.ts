/**
 * The agent's one door to systeminformation (hardware facts for enrollment, loaded only then)
 * and the cheap per-sample readings for telemetry, which come straight from the kernel through
 * node:os and statfs: an idle agent keeps neither systeminformation nor its child processes
 * around. Everything is best effort: a fact that cannot be read becomes null or a neutral value.
 */
import { statfs } from 'node:fs/promises';
import { arch, cpus, freemem, hostname, platform, totalmem } from 'node:os';
import type { ExecutionProvider, HardwareFacts } from '../shared/protocol/index.js';

export async function readHardwareFacts(
  executionProviders: ExecutionProvider[],
  onnxruntimeVersion: string,
): Promise<HardwareFacts> {
  const { default: si } = await import('systeminformation');
  const [cpu, graphics, flags] = await Promise.all([
    si.cpu().catch(() => null),
    si.graphics().catch(() => null),
    si.cpuFlags().catch(() => ''),
  ]);
  const gpu =
    graphics?.controllers.map((c) => [c.vendor, c.model].filter(Boolean).join(' ')).find(Boolean) ?? null;
  return {
    hostname: hostname().slice(0, 255),
    arch: arch(),
    platform: platform(),
    cpuModel:
      (cpu ? [cpu.manufacturer, cpu.brand].filter(Boolean).join(' ') : 'unknown').slice(0, 255) || 'unknown',
    cpuCores: Math.max(1, cpu?.cores ?? 1),
    memoryBytes: totalmem(),
    gpu: gpu ? gpu.slice(0, 255) : null,
    executionProviders,
    onnxruntimeVersion,
    nodeVersion: process.versions.node,
    cpuFlags: flags
      .split(/\s+/)
      .filter((f) => f.length > 0 && f.length <= 32)
      .slice(0, 512),
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
let previousTimes: CoreTimes | null = null;

function coreTimes(): CoreTimes {
  return cpus().map(({ times }) => {
    const busy = times.user + times.nice + times.sys + times.irq;
    return { busy, total: busy + times.idle };
  });
}

/** CPU load from the kernel's per-core counters since the previous call (first call: since boot). */
export async function sampleSystem(diskPath: string): Promise<SystemSample> {
  const now = coreTimes();
  const before =
    previousTimes && previousTimes.length === now.length
      ? previousTimes
      : now.map(() => ({ busy: 0, total: 0 }));
  previousTimes = now;
  const perCore = now.map((c, i) => {
    const total = c.total - before[i].total;
    return total > 0 ? clampPercent(((c.busy - before[i].busy) / total) * 100) : 0;
  });
  const busy = now.reduce((a, c, i) => a + c.busy - before[i].busy, 0);
  const total = now.reduce((a, c, i) => a + c.total - before[i].total, 0);
  const disk = await statfs(diskPath).catch(() => null);
  const memTotal = totalmem();
  return {
    cpuLoad: total > 0 ? clampPercent((busy / total) * 100) : 0,
    cpuLoadPerCore: perCore,
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
