import { readFile, stat } from 'node:fs/promises';
import { benchmarkFeeds, measureSpeedVerdict, type SpeedVerdict } from '../compression/evaluate/verdict.js';
import type { SampleSet } from '../compression/quantize/calibrate/data.js';

/** Size and speed of the written model against its FP32 input, measured on this machine. */
export interface QuantizeOutcome extends SpeedVerdict {
  /** Output file size / input file size. */
  sizeRatio: number;
}

/**
 * Measures the whole quantized model against the FP32 input at `batch` (block-alternating,
 * threads = this machine's cores, not spinning), with feeds from `sample` when given.
 */
export async function measureOutcome(
  inputPath: string,
  outputPath: string,
  batch: number,
  sample?: SampleSet,
): Promise<QuantizeOutcome> {
  const [float, quantized] = await Promise.all([readFile(inputPath), readFile(outputPath)]);
  const [inSize, outSize] = await Promise.all([stat(inputPath), stat(outputPath)]);
  const feeds = benchmarkFeeds(float, batch, sample);
  const verdict = await measureSpeedVerdict(float, quantized, feeds, { batch });
  return { sizeRatio: outSize.size / inSize.size, ...verdict };
}

/** The human summary's speed line: plain about a quantized model that is not faster. */
export function speedLine(o: QuantizeOutcome, label: string): string {
  const ratio = `${label}/FP32 latency ×${o.latencyRatio.toFixed(2)} at batch ${o.batch} (${o.int8Ms.toFixed(2)} vs ${o.fp32Ms.toFixed(2)} ms, ${o.threads} threads), size ×${o.sizeRatio.toFixed(2)}`;
  if (o.verdict === 'faster') return `${ratio}: faster on this machine\n`;
  // Quicker on average but not in enough of the paired runs: timings too noisy to trust (a busy
  // machine); saying only "NOT faster" next to a ratio below 1 reads like a contradiction.
  const noisy =
    o.latencyRatio < 1
      ? `; ${label} won only ${o.wins} of ${o.runs} paired runs, too few to call it faster (timings are noisy: measure again on a quiet machine)`
      : '';
  return `${label} is NOT faster than FP32 on this machine (${ratio}${noisy}): keep the FP32 model here\n`;
}

/** ", float: {...}" for the summary line when ops were left in float; nothing when none were. */
export function floatOpsPhrase(floatOps: unknown): string {
  const empty = !floatOps || (typeof floatOps === 'object' && Object.keys(floatOps).length === 0);
  return empty ? '' : `, float: ${JSON.stringify(floatOps)}`;
}
