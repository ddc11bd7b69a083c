import { uptime } from 'node:os';
import type { Logger } from '../../shared/logger.js';
import type { LatencyStats, ServingStats, TelemetryRecord } from '../../shared/protocol/index.js';
import { CpuLoadSampler, sampleSystem } from '../hardware.js';
import { readThermal } from './thermal.js';

export interface ActiveModelInfo {
  modelId: string;
  version: number;
}

export interface CollectorOptions {
  /** Seconds between samples. */
  intervalS: number;
  /** Path whose file system's free space is reported (the data dir). */
  diskPath: string;
  /** Latency of the active model since the last sample (null when nothing ran). */
  latency: () => LatencyStats | null | Promise<LatencyStats | null>;
  activeModel: () => ActiveModelInfo | null;
  /** Real-traffic stats per served release since the last sample (the inference service). */
  serving?: () => ServingStats[];
  /** Receives each record (the outbox). */
  sink: (record: Omit<TelemetryRecord, 'seq'>) => void;
  logger: Logger;
}

/** Samples the device every `intervalS` seconds; one sample at a time, never overlapping. */
export class TelemetryCollector {
  private timer: NodeJS.Timeout | undefined;
  private readonly cpuLoad = new CpuLoadSampler();
  private lastCpu = process.cpuUsage();
  private lastCpuAt = process.hrtime.bigint();
  private running: Promise<void> | null = null;

  constructor(private readonly o: CollectorOptions) {}

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.tick(), this.o.intervalS * 1000);
    // Don't keep the process alive for telemetry alone.
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** Takes one sample now (also used by tests). */
  tick(): Promise<void> {
    if (this.running !== null) return this.running;
    this.running = this.sample()
      .then((record) => this.o.sink(record))
      .catch((error) => this.o.logger.warn({ err: error }, 'telemetry sample failed'))
      .finally(() => (this.running = null));
    return this.running;
  }

  async sample(): Promise<Omit<TelemetryRecord, 'seq'>> {
    // Latency first and alone: the probe's inferences must not compete with the sampling.
    const latency = await this.o.latency();
    const serving = this.o.serving?.() ?? [];
    const [system, thermal] = await Promise.all([sampleSystem(this.o.diskPath, this.cpuLoad), readThermal()]);
    const model = this.o.activeModel();
    const tempC = thermal.tempC;
    return {
      at: new Date().toISOString(),
      cpuLoad: system.cpuLoad,
      cpuLoadPerCore: system.cpuLoadPerCore,
      memUsedBytes: system.memUsedBytes,
      memTotalBytes: system.memTotalBytes,
      diskFreeBytes: system.diskFreeBytes,
      tempC: tempC === null ? null : Math.round(tempC * 10) / 10,
      throttledBits: thermal.throttle?.raw ?? null,
      throttled: thermal.throttle ? thermal.throttle.throttled || thermal.throttle.frequencyCapped : false,
      uptimeS: Math.round(uptime()),
      agentRssBytes: process.memoryUsage.rss(),
      agentCpuPercent: this.ownCpuPercent(),
      modelId: model?.modelId ?? null,
      modelVersion: model?.version ?? null,
      latency,
      ...(serving.length > 0 ? { serving } : {}),
    };
  }

  /** The agent's own CPU use since the previous sample, percent of one core. */
  private ownCpuPercent(): number {
    const now = process.hrtime.bigint();
    const cpu = process.cpuUsage(this.lastCpu);
    const wallUs = Number(now - this.lastCpuAt) / 1000;
    this.lastCpu = process.cpuUsage();
    this.lastCpuAt = now;
    return wallUs > 0 ? Math.round(((cpu.user + cpu.system) / wallUs) * 10_000) / 100 : 0;
  }
}
