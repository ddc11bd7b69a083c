import { NUM_BUCKETS } from './histogram.js';
import { NO_PROFILE } from './latency.js';
import type { DeviceLatencySource, ProfileMap } from './latency-source.js';
import type { MonitoringOptions } from './options.js';
import { LatencyAccumulator, resolveWindow } from './windows.js';

/**
 * - device-baseline: a device's p99 now vs its own p99 in the baseline window;
 * - device-vs-profile: a device's p99 now vs the other devices of its profile running the same model now;
 * - model-baseline: a model version on a profile now vs the same version on that profile in the
 *   baseline window (per profile, so that devices joining or leaving a version do not look like
 *   a regression of the version);
 * - model-vs-profile: a model version new on a profile now vs that profile's p99 in the baseline window
 *   (whatever it ran then: this is what flags "v2 is slower than v1 on rpi4").
 */
export type RegressionKind = 'device-baseline' | 'device-vs-profile' | 'model-baseline' | 'model-vs-profile';

export interface Regression {
  kind: RegressionKind;
  deviceId: string | null;
  modelId: string | null;
  profile: string | null;
  currentP99Ms: number;
  baselineP99Ms: number;
  /** current / baseline. */
  ratio: number;
  currentSamples: number;
  baselineSamples: number;
  /** Devices behind the baseline (peers for device-vs-profile). */
  baselineDevices: number;
}

export type RegressionOptions = Pick<
  MonitoringOptions,
  | 'minuteQueryMaxMs'
  | 'regressionThreshold'
  | 'regressionWindowMs'
  | 'regressionBaselineMs'
  | 'regressionMinSamples'
  | 'regressionMinPeers'
>;

type Groups = Map<string, LatencyAccumulator>;

function mergeGroup(groups: Groups, key: string, part: LatencyAccumulator): void {
  let acc = groups.get(key);
  if (!acc) groups.set(key, (acc = new LatencyAccumulator()));
  acc.merge(part);
}

/** `whole` minus `part`: histograms and counts are additive, so peers = profile − device. */
function without(whole: LatencyAccumulator, part: LatencyAccumulator): LatencyAccumulator {
  const rest = new LatencyAccumulator();
  for (const d of whole.devices) if (!part.devices.has(d)) rest.devices.add(d);
  rest.count = whole.count - part.count;
  rest.records = whole.records - part.records;
  rest.sumMs = whole.sumMs - part.sumMs;
  for (let i = 0; i < NUM_BUCKETS; i++) rest.hist[i] = Math.max(0, whole.hist[i] - part.hist[i]);
  // The peers' exact max is unknown after subtraction; the histogram bounds their p99 anyway.
  rest.maxMs = null;
  return rest;
}

/** Finds devices and model versions whose p99 rose beyond the threshold. */
export class RegressionDetector {
  constructor(
    private readonly d: {
      /** Per-device latency of a window (SQLite rollups, or PostgreSQL raw records). */
      rows: DeviceLatencySource;
      /** Device id -> profile, from the fleet store. */
      profiles: ProfileMap;
    },
    private readonly o: RegressionOptions,
  ) {}

  async detect(nowMs = Date.now(), overrides: Partial<RegressionOptions> = {}): Promise<Regression[]> {
    const o = { ...this.o, ...overrides };
    const profiles = await this.d.profiles();
    const profileOf = (deviceId: string) => profiles.get(deviceId) ?? NO_PROFILE;
    const currentStart = nowMs - o.regressionWindowMs;
    const current = resolveWindow(currentStart, nowMs, o, true);
    // The baseline ends where the current window's first bucket starts: no overlap.
    const baseline = resolveWindow(current.fromMs - o.regressionBaselineMs, current.fromMs, o, false);

    // One pass per window groups rows by (device, model): one histogram add per row. Every
    // coarser group is then a merge of those (histograms are additive), ~1,000 merges, not
    // three adds per row.
    const byDeviceModel = (w: typeof current) =>
      this.d.rows.group(w, (row) => `${row.device_id}\u0000${row.model_id}`);
    const [currentRows, baselineRows] = await Promise.all([byDeviceModel(current), byDeviceModel(baseline)]);
    const now = { device: new Map(), deviceModel: currentRows, profileModel: new Map() } as Record<
      string,
      Groups
    >;
    for (const [key, acc] of now.deviceModel) {
      const [deviceId, modelId] = key.split('\u0000');
      mergeGroup(now.device, deviceId, acc);
      mergeGroup(now.profileModel, `${profileOf(deviceId)}\u0000${modelId}`, acc);
    }
    const before = { device: new Map(), profile: new Map(), profileModel: new Map() } as Record<
      string,
      Groups
    >;
    for (const [key, acc] of baselineRows) {
      const [deviceId, modelId] = key.split('\u0000');
      const profile = profileOf(deviceId);
      mergeGroup(before.device, deviceId, acc);
      mergeGroup(before.profile, profile, acc);
      mergeGroup(before.profileModel, `${profile}\u0000${modelId}`, acc);
    }

    const found: Regression[] = [];
    const compare = (
      kind: RegressionKind,
      subject: { deviceId?: string; modelId?: string; profile?: string },
      cur: LatencyAccumulator | undefined,
      base: LatencyAccumulator | undefined,
    ) => {
      if (!cur || !base || cur.count < o.regressionMinSamples || base.count < o.regressionMinSamples) return;
      const c = cur.summary().p99Ms;
      const b = base.summary().p99Ms;
      if (c === null || b === null || !(b > 0) || c <= b * (1 + o.regressionThreshold)) return;
      found.push({
        kind,
        deviceId: subject.deviceId ?? null,
        modelId: subject.modelId ?? null,
        profile: subject.profile ?? null,
        currentP99Ms: c,
        baselineP99Ms: b,
        ratio: c / b,
        currentSamples: cur.count,
        baselineSamples: base.count,
        baselineDevices: base.devices.size,
      });
    };

    for (const [deviceId, cur] of now.device) {
      compare(
        'device-baseline',
        { deviceId, profile: profileOf(deviceId) },
        cur,
        before.device.get(deviceId),
      );
    }
    for (const [key, cur] of now.deviceModel) {
      const [deviceId, modelId] = key.split('\u0000');
      const profile = profileOf(deviceId);
      const all = now.profileModel.get(`${profile}\u0000${modelId}`);
      if (!all || all.devices.size - 1 < o.regressionMinPeers) continue;
      compare('device-vs-profile', { deviceId, modelId, profile }, cur, without(all, cur));
    }
    for (const [key, cur] of now.profileModel) {
      const [profile, modelId] = key.split('\u0000');
      const own = before.profileModel.get(key);
      compare('model-baseline', { modelId, profile }, cur, own);
      // A version new to the profile is judged against whatever the profile ran before it.
      if (!own || own.count < o.regressionMinSamples)
        compare('model-vs-profile', { modelId, profile }, cur, before.profile.get(profile));
    }
    return found.sort((a, b) => b.ratio - a.ratio);
  }
}
