import type { Db } from '../store/db.js';
import type { MonitoringOptions } from './options.js';
import type { RollupStore } from './rollups.js';
import {
  LatencyAccumulator,
  type LatencyRow,
  LatencyRows,
  type LatencyStatsOut,
  type ResolvedWindow,
  resolveWindow,
} from './windows.js';

export const GROUP_BY = ['device', 'model', 'profile'] as const;
export type GroupBy = (typeof GROUP_BY)[number];

/** Devices without a profile are grouped under this key. */
export const NO_PROFILE = '(none)';

export interface LatencyGroup extends LatencyStatsOut {
  key: string;
}

export interface FleetLatency {
  by: GroupBy;
  window: { fromMs: number; toMs: number; resolution: 'minute' | 'hour' };
  fleet: LatencyStatsOut;
  groups: LatencyGroup[];
}

/** Fleet-wide latency percentiles over a window, per device, model version or profile. */
export class FleetLatencyQuery {
  private readonly rows: LatencyRows;
  private readonly profiles;

  constructor(
    db: Db,
    rollups: RollupStore,
    private readonly o: Pick<MonitoringOptions, 'minuteQueryMaxMs'>,
  ) {
    this.rows = new LatencyRows(rollups);
    this.profiles = db.prepare('SELECT id, profile FROM devices');
  }

  /** Device id -> profile name (NO_PROFILE when unset). */
  profileMap(): Map<string, string> {
    const rows = this.profiles.all() as Array<{ id: string; profile: string | null }>;
    return new Map(rows.map((r) => [r.id, r.profile ?? NO_PROFILE]));
  }

  keyOf(by: GroupBy): (row: LatencyRow) => string {
    if (by === 'device') return (row) => row.device_id;
    if (by === 'model') return (row) => row.model_id;
    const profiles = this.profileMap();
    return (row) => profiles.get(row.device_id) ?? NO_PROFILE;
  }

  /** The window [now - windowMs, now], whole buckets (see resolveWindow). */
  window(windowMs: number, nowMs = Date.now()): ResolvedWindow {
    return resolveWindow(nowMs - windowMs, nowMs, this.o, true);
  }

  run(by: GroupBy, windowMs: number, nowMs = Date.now()): FleetLatency {
    const w = this.window(windowMs, nowMs);
    const keyOf = this.keyOf(by);
    const groups = this.rows.group(w, keyOf);
    const fleet = new LatencyAccumulator();
    for (const acc of groups.values()) fleet.merge(acc);
    return {
      by,
      window: { fromMs: w.fromMs, toMs: w.toMs, resolution: w.resolution === 60_000 ? 'minute' : 'hour' },
      fleet: fleet.summary(),
      groups: [...groups.entries()]
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([key, acc]) => ({ key, ...acc.summary() })),
    };
  }
}
