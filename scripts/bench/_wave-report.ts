// Per-wave figures of a finished rollout, from GET /api/rollouts/:id.

export interface RolloutDetail {
  id: string;
  status: string;
  createdAt: string;
  counts: Record<string, number>;
  executions: Array<{
    wave: number;
    status: string;
    startedAt: string | null;
    finishedAt: string | null;
  }>;
}

export interface WaveRow {
  wave: number;
  devices: number;
  succeeded: number;
  failed: number;
  /** Seconds after the rollout was created: first device started, last device finished. */
  startS: string;
  doneS: string;
  durationS: string;
}

const FAILED = new Set(['failed', 'timed_out', 'rejected']);

export function waveRows(detail: RolloutDetail): WaveRow[] {
  const created = Date.parse(detail.createdAt);
  const waves = new Map<number, RolloutDetail['executions']>();
  for (const e of detail.executions) waves.set(e.wave, [...(waves.get(e.wave) ?? []), e]);
  const seconds = (ms: number) => (Number.isFinite(ms) ? ((ms - created) / 1000).toFixed(1) : '—');
  return [...waves.entries()]
    .sort(([a], [b]) => a - b)
    .map(([wave, list]) => {
      const starts = list.flatMap((e) => (e.startedAt ? [Date.parse(e.startedAt)] : []));
      const ends = list.flatMap((e) => (e.finishedAt ? [Date.parse(e.finishedAt)] : []));
      const start = starts.length ? Math.min(...starts) : Number.NaN;
      const done = ends.length === list.length ? Math.max(...ends) : Number.NaN;
      return {
        wave,
        devices: list.length,
        succeeded: list.filter((e) => e.status === 'succeeded').length,
        failed: list.filter((e) => FAILED.has(e.status)).length,
        startS: seconds(start),
        doneS: seconds(done),
        durationS: Number.isFinite(done - start) ? ((done - start) / 1000).toFixed(1) : '—',
      };
    });
}
