/**
 * The agent's one door to systeminformation: hardware facts for enrollment and the cheap
 * per-sample readings for telemetry. Everything is best effort: a fact that cannot be read
 * becomes null or a neutral value, never an exception that stops the agent.
 */
import { statfs } from 'node:fs/promises';
import { arch, hostname, platform, totalmem } from 'node:os';
import si from 'systeminformation';
import type { ExecutionProvider, HardwareFacts } from '../shared/protocol/index.js';

export async function readHardwareFacts(
  executionProviders: ExecutionProvider[],
  onnxruntimeVersion: string,
): Promise<HardwareFacts> {
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
  /** CPU temperature from systeminformation, °C; null when missing or implausible (Pis report -1). */
  tempC: number | null;
}

export async function sampleSystem(diskPath: string): Promise<SystemSample> {
  const [load, mem, temp, disk] = await Promise.all([
    si.currentLoad().catch(() => null),
    si.mem().catch(() => null),
    si.cpuTemperature().catch(() => null),
    statfs(diskPath).catch(() => null),
  ]);
  const t = temp?.main;
  return {
    cpuLoad: clampPercent(load?.currentLoad),
    cpuLoadPerCore: load?.cpus.map((c) => clampPercent(c.load)) ?? [],
    memUsedBytes: mem ? mem.active : 0,
    memTotalBytes: mem ? mem.total : totalmem(),
    diskFreeBytes: disk ? disk.bavail * disk.bsize : null,
    tempC: typeof t === 'number' && Number.isFinite(t) && t > 0 && t < 150 ? t : null,
  };
}

function clampPercent(value: number | undefined): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) return 0;
  return Math.min(100, Math.max(0, Math.round(value * 100) / 100));
}
