import { FleetError } from '../../shared/errors/index.js';
import { type GoldenSet, goldenTensorData, maxAbsDiff } from '../../shared/manifest/index.js';
import { makeTensor, type OrtFeeds, type OrtSession } from '../runtime/ort.js';

export interface GoldenResult {
  cases: number;
  /** Largest |expected - actual| over every output value. */
  maxAbsDiff: number;
  /** Share of labelled cases whose argmax of the first output equals the label; null without labels. */
  accuracy: number | null;
}

/** Runs every golden case and compares outputs; GOLDEN_MISMATCH beyond `tolerance`. */
export async function checkGolden(
  session: OrtSession,
  golden: GoldenSet,
  tolerance: number,
): Promise<GoldenResult> {
  let worst = 0;
  let labelled = 0;
  let correct = 0;
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
      const diff = maxAbsDiff(
        goldenTensorData(expected) as ArrayLike<number>,
        actual.data as ArrayLike<number>,
      );
      worst = Math.max(worst, diff);
      if (diff > tolerance) {
        throw new FleetError(
          'GOLDEN_MISMATCH',
          `output ${name} of golden case ${i} differs by ${diff} (tolerance ${tolerance})`,
          { case: i, output: name, maxAbsDiff: diff, tolerance },
        );
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
  return {
    cases: golden.cases.length,
    maxAbsDiff: worst,
    accuracy: labelled > 0 ? correct / labelled : null,
  };
}
