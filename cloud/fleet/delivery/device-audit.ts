import { Gauge, type Registry } from 'prom-client';
import type { BenchReport, StateReport } from '../../../shared/protocol/index.js';
import type { FleetDb, FleetStore } from '../store/kysely.js';
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
  private readonly db: FleetDb;

  constructor(
    fleet: FleetStore,
    private readonly deps: {
      targets: Pick<TargetService, 'current' | 'currentEpoch'>;
      manifests: Pick<ManifestService, 'find'>;
    },
  ) {
    this.db = fleet.db;
  }

  async onState(deviceId: string, report: StateReport): Promise<void> {
    const problem = await this.unknownVersion(deviceId, report);
    if (problem) await this.raise(deviceId, 'UNKNOWN_VERSION', problem);
  }

  async onBench(deviceId: string, report: BenchReport): Promise<void> {
    if (!report.golden) return;
    const row = {
      model_id: report.modelId,
      sha256: report.sha256,
      cases: report.golden.cases,
      cosine: report.golden.cosine ?? null,
      max_abs: report.golden.maxAbsDiff,
      accuracy: report.golden.accuracy,
      at: report.at,
    };
    await this.db
      .insertInto('device_fidelity')
      .values({ device_id: deviceId, ...row })
      .onConflict((c) => c.column('device_id').doUpdateSet(row))
      .execute();
  }

  async alarms(deviceId: string): Promise<DeviceAlarm[]> {
    const rows = await this.db
      .selectFrom('device_alarms')
      .select(['code', 'message', 'count', 'first_at', 'last_at'])
      .where('device_id', '=', deviceId)
      .orderBy('last_at', 'desc')
      .execute();
    return rows.map((r) => ({
      code: r.code as DeviceAlarm['code'],
      message: r.message,
      count: r.count,
      firstAt: r.first_at,
      lastAt: r.last_at,
    }));
  }

  async fidelity(deviceId: string): Promise<DeviceFidelity | null> {
    const row = await this.db
      .selectFrom('device_fidelity')
      .select(['model_id', 'sha256', 'cases', 'cosine', 'max_abs', 'accuracy', 'at'])
      .where('device_id', '=', deviceId)
      .executeTakeFirst();
    if (!row) return null;
    const { model_id: modelId, max_abs: maxAbs, ...rest } = row;
    return { modelId, maxAbs, ...rest };
  }

  /** `fleetml_device_alarms{device, code}`: alarms raised per device (read from the store when scraped). */
  registerMetrics(registry: Registry): void {
    const db = this.db;
    new Gauge({
      name: 'fleetml_device_alarms',
      help: 'Alarms raised about a device, by code (UNKNOWN_VERSION: it reports a version the cloud never issued)',
      labelNames: ['device', 'code'],
      registers: [registry],
      async collect() {
        const rows = await db.selectFrom('device_alarms').select(['device_id', 'code']).execute();
        this.reset();
        for (const row of rows) this.set({ device: row.device_id, code: row.code }, 1);
      },
    });
  }

  private async unknownVersion(deviceId: string, report: StateReport): Promise<string | null> {
    const target = await this.deps.targets.current(deviceId);
    const sameEpoch = report.epoch === undefined || report.epoch === (await this.deps.targets.currentEpoch());
    if (sameEpoch && report.targetVersion !== null && report.targetVersion > (target?.version ?? 0)) {
      return `reports target version ${report.targetVersion}; the cloud issued at most ${target?.version ?? 0}`;
    }
    const active = report.activeModel;
    if (!active) return null;
    const known = await this.db
      .selectFrom('models')
      .select('id')
      .where('id', '=', active.modelId)
      .where('sha256', '=', active.sha256)
      .executeTakeFirst();
    if (!known)
      return `runs ${active.modelId} with artifact ${active.sha256.slice(0, 12)}…, which the cloud never issued`;
    const issued = (await this.deps.manifests.find(active.modelId))?.manifest.version ?? 0;
    if (active.version > issued) {
      return `runs manifest version ${active.version} of ${active.modelId}; the cloud issued at most ${issued}`;
    }
    return null;
  }

  private async raise(deviceId: string, code: DeviceAlarm['code'], message: string): Promise<void> {
    const now = new Date().toISOString();
    const text = message.slice(0, 500);
    await this.db
      .insertInto('device_alarms')
      .values({ device_id: deviceId, code, message: text, count: 1, first_at: now, last_at: now })
      .onConflict((c) =>
        c.columns(['device_id', 'code']).doUpdateSet((eb) => ({
          message: text,
          count: eb('device_alarms.count', '+', 1),
          last_at: now,
        })),
      )
      .execute();
  }
}
