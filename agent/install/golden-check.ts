import { FleetError } from '../../shared/errors/index.js';
import {
  cosineSimilarity,
  type GoldenSet,
  goldenTensorData,
  maxAbsDiff,
} from '../../shared/manifest/index.js';
import { makeTensor, type OrtFeeds, type OrtSession } from '../runtime/ort.js';

export interface GoldenResult {
  cases: number;
  /** Largest |expected - actual| over every output value. */
  maxAbsDiff: number;
  /** Smallest cosine similarity of expected and actual over every output tensor. */
  cosine: number;
  /** Share of labelled cases whose argmax of the first output equals the label; null without labels. */
  accuracy: number | null;
}

/** Bounds from the manifest: max |diff| per value and, when given, the smallest cosine per tensor. */
export interface GoldenBounds {
  tolerance: number;
  minCosine?: number;
}

/**
 * Runs every golden case on this device's execution provider and compares the outputs. Every
 * case is measured before judging, so that GOLDEN_MISMATCH reports the fidelity over the whole
 * set (cosine, max |diff|) in its message and details.
 */
export async function checkGolden(
  session: OrtSession,
  golden: GoldenSet,
  bounds: GoldenBounds,
): Promise<GoldenResult> {
  let worst = 0;
  let cosine = 1;
  let labelled = 0;
  let correct = 0;
  let failure: string | null = null;
  for (const [i, c] of golden.cases.entries()) {
    const feeds: OrtFeeds = {};
    for (const [name, t] of Object.entries(c.inputs))
      feeds[name] = makeTensor(t.type, goldenTensorData(t), t.dims);
    let outputs: Awaited<ReturnType<OrtSession['run']>>;
    try {
      outputs = await session.run(feeds);
    } catch (error) {
      throw new FleetError('GOLDEN_MISMATCH', `golden case ${i} does not run: ${(error as Error).message}`, {
        case: i,
      });
    }
    for (const [name, expected] of Object.entries(c.outputs)) {
      const actual = outputs[name];
      if (!actual)
        throw new FleetError('GOLDEN_MISMATCH', `model has no output ${name} (golden case ${i})`, {
          case: i,
        });
      const want = goldenTensorData(expected) as ArrayLike<number>;
      const got = actual.data as ArrayLike<number>;
      const diff = maxAbsDiff(want, got);
      const cos = cosineSimilarity(want, got);
      worst = Math.max(worst, diff);
      cosine = Math.min(cosine, cos);
      if (
        !failure &&
        (diff > bounds.tolerance || (bounds.minCosine !== undefined && cos < bounds.minCosine))
      ) {
        failure = `output ${name} of golden case ${i}`;
      }
    }
    if (c.label !== undefined) {
      labelled++;
      const first = outputs[session.outputNames[0]].data as ArrayLike<number>;
      let best = 0;
      for (let k = 1; k < first.length; k++) if (first[k] > first[best]) best = k;
      if (best === c.label) correct++;
    }
  }
  if (failure) {
    const minCos = bounds.minCosine === undefined ? '' : `, cosine >= ${bounds.minCosine}`;
    throw new FleetError(
      'GOLDEN_MISMATCH',
      `golden outputs do not match on this device (${failure} first): cosine ${round(cosine)}, max |diff| ${round(worst)} (allowed: max |diff| <= ${round(bounds.tolerance)}${minCos})`,
      { cosine, maxAbsDiff: worst, ...bounds },
    );
  }
  return {
    cases: golden.cases.length,
    maxAbsDiff: worst,
    cosine,
    accuracy: labelled > 0 ? correct / labelled : null,
  };
}

function round(x: number): number {
  return Number.isFinite(x) ? Number(x.toPrecision(6)) : x;
}
