import { Gauge, type Registry } from 'prom-client';
import type { BenchReport, StateReport } from '../../../shared/protocol/index.js';
import type { Db } from '../store/db.js';
import type { ManifestService } from './manifests.js';
import type { TargetService } from './targets.js';

export interface DeviceAlarm {
  code: 'UNKNOWN_VERSION';
  message: string;
  count: number;
  firstAt: string;
  lastAt: string;
}

export interface DeviceFidelity {
  modelId: string;
  sha256: string;
  cases: number;
  cosine: number | null;
  maxAbs: number;
  accuracy: number | null;
  at: string;
}

/**
 * Watches what devices say they run against what the cloud issued. A device that reports a
 * target version the cloud never issued (in this epoch), an artifact no registered model has, or
 * a manifest version above the one issued raises an UNKNOWN_VERSION alarm: something other than
 * the cloud got a target or a model onto it. Alarms show in the device API, the console and
 * /metrics (`fleetml_device_alarms`). Also keeps the golden-check fidelity each device measured.
 */
export class DeviceAudit {
  constructor(
    private readonly db: Db,
    private readonly deps: {
      targets: Pick<TargetService, 'current' | 'epoch'>;
      manifests: Pick<ManifestService, 'find'>;
    },
  ) {}

  onState(deviceId: string, report: StateReport): void {
    const problem = this.unknownVersion(deviceId, report);
    if (problem) this.raise(deviceId, 'UNKNOWN_VERSION', problem);
  }

  onBench(deviceId: string, report: BenchReport): void {
    if (!report.golden) return;
    this.db
      .prepare(
        `INSERT INTO device_fidelity (device_id, model_id, sha256, cases, cosine, max_abs, accuracy, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT(device_id) DO UPDATE SET model_id = excluded.model_id, sha256 = excluded.sha256, cases = excluded.cases,
           cosine = excluded.cosine, max_abs = excluded.max_abs, accuracy = excluded.accuracy, at = excluded.at`,
      )
      .run(
        deviceId,
        report.modelId,
        report.sha256,
        report.golden.cases,
        report.golden.cosine ?? null,
        report.golden.maxAbsDiff,
        report.golden.accuracy,
        report.at,
      );
  }

  alarms(deviceId: string): DeviceAlarm[] {
    return this.db
      .prepare(
        'SELECT code, message, count, first_at firstAt, last_at lastAt FROM device_alarms WHERE device_id = ? ORDER BY last_at DESC',
      )
      .all(deviceId) as DeviceAlarm[];
  }

  fidelity(deviceId: string): DeviceFidelity | null {
    return (
      (this.db
        .prepare(
          'SELECT model_id modelId, sha256, cases, cosine, max_abs maxAbs, accuracy, at FROM device_fidelity WHERE device_id = ?',
        )
        .get(deviceId) as DeviceFidelity | undefined) ?? null
    );
  }

  /** `fleetml_device_alarms{device, code}`: alarms raised per device (read from SQLite when scraped). */
  registerMetrics(registry: Registry): void {
    const db = this.db;
    new Gauge({
      name: 'fleetml_device_alarms',
      help: 'Alarms raised about a device, by code (UNKNOWN_VERSION: it reports a version the cloud never issued)',
      labelNames: ['device', 'code'],
      registers: [registry],
      collect() {
        this.reset();
        const rows = db.prepare('SELECT device_id device, code FROM device_alarms').all() as Array<{
          device: string;
          code: string;
        }>;
        for (const row of rows) this.set(row, 1);
      },
    });
  }

  private unknownVersion(deviceId: string, report: StateReport): string | null {
    const target = this.deps.targets.current(deviceId);
    const sameEpoch = report.epoch === undefined || report.epoch === this.deps.targets.epoch;
    if (sameEpoch && report.targetVersion !== null && report.targetVersion > (target?.version ?? 0)) {
      return `reports target version ${report.targetVersion}; the cloud issued at most ${target?.version ?? 0}`;
    }
    const active = report.activeModel;
    if (!active) return null;
    const known = this.db
      .prepare('SELECT 1 FROM models WHERE id = ? AND sha256 = ?')
      .get(active.modelId, active.sha256);
    if (!known)
      return `runs ${active.modelId} with artifact ${active.sha256.slice(0, 12)}…, which the cloud never issued`;
    const issued = this.deps.manifests.find(active.modelId)?.manifest.version ?? 0;
    if (active.version > issued) {
      return `runs manifest version ${active.version} of ${active.modelId}; the cloud issued at most ${issued}`;
    }
    return null;
  }

  private raise(deviceId: string, code: DeviceAlarm['code'], message: string): void {
    const now = new Date().toISOString();
    this.db
      .prepare(
        `INSERT INTO device_alarms (device_id, code, message, count, first_at, last_at) VALUES (?, ?, ?, 1, ?, ?)
         ON CONFLICT(device_id, code) DO UPDATE SET message = excluded.message, count = count + 1, last_at = excluded.last_at`,
      )
      .run(deviceId, code, message.slice(0, 500), now, now);
  }
}
