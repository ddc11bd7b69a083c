import type { Db } from '../store/db.js';
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

interface Row {
  id: string;
  name: string;
  profile: string | null;
  online: number;
  last_seen_at: string | null;
  records: number | null;
  throttled_records: number | null;
  throttled_bits: number | null;
  temp_n: number | null;
  temp_sum: number | null;
  temp_max: number | null;
  cpu_sum: number | null;
}

/** Online/offline/stale and throttling per device, from the devices table and minute rollups. */
export class HealthQuery {
  private readonly query;

  constructor(
    db: Db,
    private readonly o: HealthOptions,
  ) {
    db.aggregate('fleetml_bit_or', { start: 0, step: (acc: number, bits: number) => acc | bits });
    this.query = db.prepare(
      `SELECT d.id, d.name, d.profile, d.online, d.last_seen_at, w.records, w.throttled_records, w.throttled_bits,
         w.temp_n, w.temp_sum, w.temp_max, w.cpu_sum
       FROM devices d LEFT JOIN (
         SELECT device_id, sum(records) records, sum(throttled_records) throttled_records,
           fleetml_bit_or(throttled_bits) throttled_bits, sum(temp_n) temp_n, sum(temp_sum) temp_sum,
           max(temp_max) temp_max, sum(cpu_sum) cpu_sum
         FROM telemetry_rollup WHERE resolution = ? AND bucket_start >= ?
         GROUP BY device_id
       ) w ON w.device_id = d.id
       WHERE d.revoked = 0 ORDER BY d.id`,
    );
  }

  run(nowMs = Date.now()): FleetHealth {
    const from = nowMs - this.o.healthWindowMs;
    const rows = this.query.all(RESOLUTION.minute, from - (from % RESOLUTION.minute)) as Row[];
    const staleAfterS = this.o.expectedIntervalS * this.o.offlineAfterIntervals;
    const counts = { total: rows.length, online: 0, offline: 0, stale: 0, throttled: 0 };
    const devices = rows.map((r): DeviceHealth => {
      const seen = r.last_seen_at ? Date.parse(r.last_seen_at) : Number.NaN;
      const silentForS = Number.isFinite(seen) ? Math.max(0, (nowMs - seen) / 1000) : null;
      const status: DeviceStatus =
        r.online !== 1 ? 'offline' : silentForS === null || silentForS > staleAfterS ? 'stale' : 'online';
      const throttledRecords = r.throttled_records ?? 0;
      counts[status]++;
      if (throttledRecords > 0) counts.throttled++;
      return {
        id: r.id,
        name: r.name,
        profile: r.profile ?? NO_PROFILE,
        status,
        lastSeenAt: r.last_seen_at,
        silentForS: silentForS === null ? null : Math.round(silentForS),
        records: r.records ?? 0,
        throttled: throttledRecords > 0,
        throttledRecords,
        throttledBits: r.throttled_bits ?? 0,
        tempMeanC: r.temp_n ? (r.temp_sum ?? 0) / r.temp_n : null,
        tempMaxC: r.temp_max,
        cpuLoadMean: r.records ? (r.cpu_sum ?? 0) / r.records : null,
      };
    });
    return { windowMs: this.o.healthWindowMs, staleAfterS, counts, devices };
  }
}
