import { sql } from 'kysely';
import type { Device } from '../inventory/devices.js';
import { type FleetStore, toNumber } from '../store/kysely.js';
import { NO_PROFILE } from './latency.js';
import { type MonitoringOptions, RESOLUTION } from './options.js';

/**
 * online: the device's retained status says online and it was heard from recently;
 * offline: its status says offline (graceful stop, or the broker published its last will);
 * stale: the status still says online but nothing arrived for `offlineAfterIntervals` telemetry
 * intervals (a half-open TCP connection, a cloud restart that missed the will, a wedged agent).
 */
export type DeviceStatus = 'online' | 'offline' | 'stale';

export interface DeviceHealth {
  id: string;
  name: string;
  profile: string;
  status: DeviceStatus;
  lastSeenAt: string | null;
  /** Seconds since last heard from; null when never. */
  silentForS: number | null;
  /** Telemetry records in the health window. */
  records: number;
  /** Any record in the window reported current throttling (flag or vcgencmd bits 0–3). */
  throttled: boolean;
  throttledRecords: number;
  /** OR of every vcgencmd get_throttled word reported in the window. */
  throttledBits: number;
  tempMeanC: number | null;
  tempMaxC: number | null;
  cpuLoadMean: number | null;
}

export interface FleetHealth {
  windowMs: number;
  staleAfterS: number;
  counts: { total: number; online: number; offline: number; stale: number; throttled: number };
  devices: DeviceHealth[];
}

export type HealthOptions = Pick<
  MonitoringOptions,
  'healthWindowMs' | 'expectedIntervalS' | 'offlineAfterIntervals'
>;

/** What the minute rollups of the window say about one device. */
interface WindowRow {
  records: number;
  throttled_records: number;
  throttled_bits: number;
  temp_n: number;
  temp_sum: number;
  temp_max: number | null;
  cpu_sum: number;
}

export interface HealthDeps {
  /** Where the telemetry rollups live (PostgreSQL with --database, else the SQLite file). */
  store: FleetStore;
  /** Every device, from wherever the fleet's devices live: no SQL join ties the two stores. */
  devices: () => Promise<Device[]>;
}

/** Online/offline/stale and throttling per device, from the device list and minute rollups. */
export class HealthQuery {
  constructor(
    private readonly d: HealthDeps,
    private readonly o: HealthOptions,
  ) {}

  async run(nowMs = Date.now()): Promise<FleetHealth> {
    const from = nowMs - this.o.healthWindowMs;
    const [all, windows] = await Promise.all([
      this.d.devices(),
      this.windowStats(from - (from % RESOLUTION.minute)),
    ]);
    const listed = all.filter((d) => !d.revoked).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const staleAfterS = this.o.expectedIntervalS * this.o.offlineAfterIntervals;
    const counts = { total: listed.length, online: 0, offline: 0, stale: 0, throttled: 0 };
    const devices = listed.map((d): DeviceHealth => {
      const w = windows.get(d.id);
      const seen = d.lastSeenAt ? Date.parse(d.lastSeenAt) : Number.NaN;
      const silentForS = Number.isFinite(seen) ? Math.max(0, (nowMs - seen) / 1000) : null;
      const status: DeviceStatus = !d.online
        ? 'offline'
        : silentForS === null || silentForS > staleAfterS
          ? 'stale'
          : 'online';
      const throttledRecords = w?.throttled_records ?? 0;
      counts[status]++;
      if (throttledRecords > 0) counts.throttled++;
      return {
        id: d.id,
        name: d.name,
        profile: d.profile ?? NO_PROFILE,
        status,
        lastSeenAt: d.lastSeenAt,
        silentForS: silentForS === null ? null : Math.round(silentForS),
        records: w?.records ?? 0,
        throttled: throttledRecords > 0,
        throttledRecords,
        throttledBits: w?.throttled_bits ?? 0,
        tempMeanC: w?.temp_n ? w.temp_sum / w.temp_n : null,
        tempMaxC: w?.temp_max ?? null,
        cpuLoadMean: w?.records ? w.cpu_sum / w.records : null,
      };
    });
    return { windowMs: this.o.healthWindowMs, staleAfterS, counts, devices };
  }

  /** Per device: the minute rollups since `fromMs`, summed (one grouped scan of the window). */
  private async windowStats(fromMs: number): Promise<Map<string, WindowRow>> {
    // SQLite has no bit_or: db.ts registers fleetml_bit_or on every connection.
    const bitOr = sql.raw(this.d.store.dialect === 'postgres' ? 'bit_or' : 'fleetml_bit_or');
    const rows = await this.d.store.db
      .selectFrom('telemetry_rollup')
      .select((eb) => [
        'device_id',
        eb.fn.sum<number | string>('records').as('records'),
        eb.fn.sum<number | string>('throttled_records').as('throttled_records'),
        sql<number | string>`${bitOr}(throttled_bits)`.as('throttled_bits'),
        eb.fn.sum<number | string>('temp_n').as('temp_n'),
        eb.fn.sum<number>('temp_sum').as('temp_sum'),
        eb.fn.max('temp_max').as('temp_max'),
        eb.fn.sum<number>('cpu_sum').as('cpu_sum'),
      ])
      .where('resolution', '=', RESOLUTION.minute)
      .where('bucket_start', '>=', fromMs)
      .groupBy('device_id')
      .execute();
    return new Map(
      rows.map((r) => [
        r.device_id,
        {
          records: toNumber(r.records),
          throttled_records: toNumber(r.throttled_records),
          throttled_bits: toNumber(r.throttled_bits),
          temp_n: toNumber(r.temp_n),
          temp_sum: Number(r.temp_sum ?? 0),
          temp_max: r.temp_max === null ? null : Number(r.temp_max),
          cpu_sum: Number(r.cpu_sum ?? 0),
        },
      ]),
    );
  }
}
