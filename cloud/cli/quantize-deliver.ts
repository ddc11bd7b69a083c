import { readFile, writeFile } from 'node:fs/promises';
import { benchmarkFeeds } from '../compression/evaluate/verdict.js';
import { saveModel } from '../compression/onnx/io.js';
import { encodeModel } from '../compression/onnx/proto.js';
import type { ModelProto } from '../compression/onnx/types.js';
import type { SampleSet } from '../compression/quantize/calibrate/data.js';
import {
  chooseByMeasurement,
  type Int8Choice,
  type Int8Form,
  type MeasuredCandidate,
} from '../compression/quantize/choose.js';
import type { QuantizeFlags } from './quantize.js';
import { floatOpsPhrase, speedLine } from './quantize-report.js';
import type { QuantizeTarget } from './quantize-target.js';

/** One INT8 form built for the model, with what its builder reports. */
export interface BuiltInt8 {
  form: Int8Form;
  model: ModelProto;
  quantizedNodes: number;
  floatOps?: unknown;
}

/** The measured figures of one form, as the summary reports them. */
const speedOf = (c: MeasuredCandidate) => ({
  batch: c.batch,
  fp32Ms: c.fp32Ms,
  int8Ms: c.int8Ms,
  latencyRatio: c.latencyRatio,
  sizeRatio: c.sizeRatio,
  wins: c.wins,
  runs: c.runs,
  verdict: c.verdict,
});

const LABELS: Record<Int8Form, string> = {
  static: 'INT8',
  dynamic: 'dynamic INT8',
  'matmul-only': 'INT8 (weight MatMuls only)',
};

/**
 * Which model goes to `--output`: on a target whose kernels are this machine's (x86 profiles
 * on x86), the fastest candidate that measured faster than FP32, else the FP32 model unchanged
 * (`--allow-slower`: the fastest candidate anyway). On other targets the one candidate built
 * from the profile's rules, whatever this machine measured (devices of the profile decide).
 */
function pick(choice: Int8Choice, target: QuantizeTarget, flags: QuantizeFlags): Int8Form | 'fp32' {
  if (!target.tuneHere || flags.allowSlower) return choice.best.form;
  return choice.chosen;
}

/**
 * Measures the INT8 candidates against the FP32 input at the target's batch, writes the one
 * to ship (or FP32) and prints one summary: a JSON object with `--json`, else lines that say
 * plainly when INT8 is not faster.
 */
export async function deliverInt8(
  flags: QuantizeFlags,
  modelPath: string,
  target: QuantizeTarget,
  built: readonly BuiltInt8[],
  fields: Record<string, unknown>,
  sample?: SampleSet,
): Promise<void> {
  const started = performance.now();
  const float = await readFile(modelPath);
  const feeds = benchmarkFeeds(float, target.batch, sample);
  const candidates = built.map((b) => ({ form: b.form, bytes: encodeModel(b.model) }));
  const choice = await chooseByMeasurement(float, candidates, feeds, { batch: target.batch });
  const written = pick(choice, target, flags);
  const shipped = built.find((b) => b.form === written);
  const sizeBytes = shipped ? await saveModel(shipped.model, flags.output) : float.length;
  if (!shipped) await writeFile(flags.output, float);
  const best = choice.candidates.find((c) => c.form === written) ?? choice.best;
  const summary = {
    input: modelPath,
    output: flags.output,
    sizeBytes,
    target: target.name,
    reduceRange: target.reduceRange,
    decisions: target.tuneHere ? 'measured' : 'rules',
    ...fields,
    quantizedNodes: shipped?.quantizedNodes ?? 0,
    floatOps: shipped?.floatOps ?? fields.floatOps,
    chosen: written,
    candidates: choice.candidates.map((c) => ({ form: c.form, ...speedOf(c) })),
    ...speedOf(best),
    threads: best.threads,
    measureSeconds: (performance.now() - started) / 1000,
  };
  if (flags.json) {
    process.stdout.write(`${JSON.stringify(summary)}\n`);
    return;
  }
  process.stdout.write(describe(summary, shipped, best, choice, target, flags));
}

function describe(
  summary: { output: string; sizeBytes: number; seconds?: unknown },
  shipped: BuiltInt8 | undefined,
  best: Int8Choice['best'],
  choice: Int8Choice,
  target: QuantizeTarget,
  flags: QuantizeFlags,
): string {
  const lines: string[] = [];
  const took = Number(summary.seconds ?? 0).toFixed(1);
  if (shipped) {
    const floatOps = floatOpsPhrase(shipped.floatOps);
    lines.push(
      `wrote ${summary.output} (${LABELS[shipped.form]} for ${target.name}, ${summary.sizeBytes} bytes, ${shipped.quantizedNodes} nodes converted${floatOps}) in ${took} s`,
    );
  } else {
    lines.push(
      `wrote ${summary.output}: the FP32 model unchanged (${summary.sizeBytes} bytes): no INT8 form was faster on this machine (--allow-slower writes the fastest INT8 form anyway)`,
    );
  }
  if (choice.candidates.length > 1) {
    const each = choice.candidates.map((c) => `${c.form} ×${c.latencyRatio.toFixed(2)}`).join(', ');
    lines.push(
      `INT8 forms against FP32 at batch ${best.batch}: ${each} → ${shipped ? shipped.form : 'FP32 kept'}`,
    );
  }
  const speed = speedLine({ ...best }, LABELS[best.form]).trimEnd();
  lines.push(shipped || !target.tuneHere ? speed : speed.replace(/: keep the FP32 model here$/, ''));
  if (!target.tuneHere)
    lines.push(
      `measured on this ${process.arch} machine, not with ${target.name}'s kernels: the INT8 model follows the profile's rules; devices of the profile report whether it is faster`,
    );
  else if (shipped && best.verdict !== 'faster' && flags.allowSlower)
    lines.push('written although not faster (--allow-slower)');
  return `${lines.join('\n')}\n`;
}
