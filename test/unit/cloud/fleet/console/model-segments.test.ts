import { describe, expect, it } from 'vitest';

// The device page's latency chart (cloud/fleet/console/public/pages/device.js): a point where
// the answering model changed breaks the lines (a null point between the two) and is marked.
// The console module is plain browser JavaScript with no DOM work at import, so Node loads it.
const { modelSegments } = (await import(
  new URL('../../../../../cloud/fleet/console/public/pages/device.js', import.meta.url).href
)) as {
  modelSegments: (series: unknown[]) => { data: Array<Array<number | null>>; changes: unknown[] };
};

const point = (second: number, modelId: string | null, modelName: string | null, p50: number) => ({
  at: new Date(Date.UTC(2026, 10, 30, 12, 0, second)).toISOString(),
  modelId,
  modelName,
  p50Ms: p50,
  p90Ms: p50 + 1,
  p99Ms: p50 + 2,
});

describe('latency chart segments per model', () => {
  it('puts a gap and a marker between points of different models, none within one model', () => {
    const base = Date.UTC(2026, 10, 30, 12, 0, 0) / 1000;
    const { data, changes } = modelSegments([
      point(0, 'm-a', 'digits', 1),
      point(2, 'm-a', 'digits', 1.5),
      point(4, 'm-b', 'ocr-cls', 9),
      point(6, 'm-b', 'ocr-cls', 8),
    ]);
    expect(data[0]).toEqual([base, base + 2, base + 3, base + 4, base + 6]);
    expect(data[1]).toEqual([1, 1.5, null, 9, 8]);
    expect(data[3]).toEqual([3, 3.5, null, 11, 10]);
    expect(changes).toEqual([{ at: base + 3, from: 'digits', to: 'ocr-cls' }]);
  });

  it('names a model by id when it has no name any more, and keeps one series without changes', () => {
    expect(modelSegments([point(0, 'm-gone', null, 1), point(1, 'm-b', 'b', 2)]).changes).toEqual([
      { at: Date.UTC(2026, 10, 30, 12, 0, 0) / 1000 + 0.5, from: 'm-gone', to: 'b' },
    ]);
    const same = modelSegments([point(0, 'm-a', 'a', 1), point(1, 'm-a', 'a', 2)]);
    expect(same.changes).toEqual([]);
    expect(same.data[1]).toEqual([1, 2]);
  });
});
