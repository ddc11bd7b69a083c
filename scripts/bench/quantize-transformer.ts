/**
 * Transformers, INT8 against FP32 (issue 16): transformer classifiers built with the project's
 * ONNX builder (test/fixtures/transformer.ts; opset 14 with decomposed LayerNorm/GELU as
 * PyTorch exports them, and opset 17), random weights. For each: static INT8 without and with
 * the transformer fusion, static INT8 on the weight MatMuls only, and dynamic INT8; whole-model
 * latency against FP32 at batch 32, all in one block-alternating run (threads = cores, not
 * spinning: evaluate/verdict.ts), which form `fleetml quantize` would write (quantize/choose.ts:
 * the fastest that is faster, else FP32), size, and fidelity
 * (top-1 agreement and cosine with FP32 on 256 inputs; no trained weights, so no accuracy).
 * Writes the "## Transformers (issue 16)" section of BENCHMARKS.md.
 * Run: npx tsx scripts/bench/quantize-transformer.ts
 */
import { loadavg } from 'node:os';
import { agreement, argmaxRows, cosine } from '../../cloud/compression/evaluate/metrics.js';
import { benchmarkFeeds } from '../../cloud/compression/evaluate/verdict.js';
import { runOnce } from '../../cloud/compression/onnx/ort-eval.js';
import { encodeModel } from '../../cloud/compression/onnx/proto.js';
import type { ModelProto } from '../../cloud/compression/onnx/types.js';
import { batchTensor } from '../../cloud/compression/quantize/calibrate/data.js';
import {
  chooseByMeasurement,
  type Int8Form,
  matmulOnlyExclusions,
  pickFastest,
} from '../../cloud/compression/quantize/choose.js';
import { quantizeDynamic } from '../../cloud/compression/quantize/dynamic.js';
import { buildQdq, calibrateModel } from '../../cloud/compression/quantize/static.js';
import { createRng, gaussian } from '../../shared/random.js';
import {
  SMALL_TRANSFORMER,
  type TransformerSpec,
  transformerClassifier,
} from '../../test/fixtures/transformer.js';
import { machineLine, markdownTable, writeBenchmarkSection } from './report.js';

const BATCH = 32;
const log = (s: string) => process.stderr.write(`${s}\n`);

const CONFIGS: Array<[string, TransformerSpec]> = [
  ['d 64, 2 layers, T 32, opset 14 (decomposed)', SMALL_TRANSFORMER],
  ['d 64, 2 layers, T 32, opset 17', { ...SMALL_TRANSFORMER, opset: 17 }],
  ['d 128, 2 layers, ff 512, T 32, opset 14', { ...SMALL_TRANSFORMER, d: 128, ff: 512 }],
  // BERT-mini's width: where the weight MatMuls, not Q/DQ and the float ops around them, dominate.
  ['d 256, 2 layers, ff 1024, T 32, opset 14', { ...SMALL_TRANSFORMER, d: 256, ff: 1024 }],
  ['d 256, 2 layers, ff 1024, T 32, opset 17', { ...SMALL_TRANSFORMER, d: 256, ff: 1024, opset: 17 }],
  [
    'tiny: d 16, 1 layer, ff 32, T 4, opset 14',
    { ...SMALL_TRANSFORMER, d: 16, ff: 32, heads: 2, layers: 1, seq: 4 },
  ],
];

function samples(spec: TransformerSpec, n: number, seed: number) {
  const rng = createRng(seed);
  const x = Float32Array.from({ length: n * spec.seq * spec.d }, () => gaussian(rng));
  return { x, count: n, sampleShape: [spec.seq, spec.d] };
}

async function logits(model: ModelProto, data: ReturnType<typeof samples>): Promise<Float32Array> {
  const out = await runOnce(model, { x: batchTensor(data, 0, data.count) });
  return out.logits.data as Float32Array;
}

const rows: Array<Array<string | number>> = [];
for (const [label, spec] of CONFIGS) {
  const float = transformerClassifier(spec);
  const floatBytes = encodeModel(float);
  const calibration = samples(spec, 64, 2);
  const evalSet = samples(spec, 256, 3);
  const reference = await logits(float, evalSet);
  const feeds = benchmarkFeeds(floatBytes, BATCH, calibration);
  const unfused = await calibrateModel(float, calibration, { fuseTransformer: false });
  const fused = await calibrateModel(float, calibration);
  const matmulOnly = matmulOnlyExclusions(fused.model) ?? [];
  // The forms `fleetml quantize` compares (static fused, dynamic, MatMul-only) plus static
  // without fusion, measured against FP32 in one block-alternating run.
  const variants: Array<[string, Int8Form | null, ModelProto]> = [
    ['static INT8, no fusion', null, buildQdq(unfused).model],
    ['static INT8, fused', 'static', buildQdq(fused).model],
    [
      'static INT8 on weight MatMuls only, fused',
      'matmul-only',
      buildQdq(fused, { exclude: matmulOnly }).model,
    ],
    ['dynamic INT8', 'dynamic', (await quantizeDynamic(float)).model],
  ];
  const choice = await chooseByMeasurement(
    floatBytes,
    variants.map(([, form, m]) => ({ form: form ?? ('static' as const), bytes: encodeModel(m) })),
    feeds,
    { batch: BATCH, seconds: 8 },
  );
  const tool = pickFastest(choice.candidates.filter((_, i) => variants[i][1] !== null));
  for (const [i, [name, form, q]] of variants.entries()) {
    const v = choice.candidates[i];
    const out = await logits(q, evalSet);
    const top1 = 100 * agreement(argmaxRows(out, spec.classes), argmaxRows(reference, spec.classes));
    let cos = 0;
    for (let k = 0; k < evalSet.count; k++)
      cos += cosine(
        reference.subarray(k * spec.classes, (k + 1) * spec.classes),
        out.subarray(k * spec.classes, (k + 1) * spec.classes),
      );
    const row = [
      label,
      name,
      v.fp32Ms.toFixed(2),
      v.int8Ms.toFixed(2),
      v.latencyRatio.toFixed(2),
      v.sizeRatio.toFixed(3),
      top1.toFixed(1),
      (cos / evalSet.count).toFixed(4),
      v.verdict,
      form !== null && form === tool.chosen ? '**chosen**' : '',
    ];
    log(row.join(' | '));
    rows.push(row);
  }
  if (tool.chosen === 'fp32') {
    const row = [
      label,
      'FP32 kept (no form faster)',
      '',
      '',
      '',
      '1.00',
      '100.0',
      '1.0000',
      '',
      '**chosen**',
    ];
    log(row.join(' | '));
    rows.push(row);
  }
}

const body = `Load average at the end: ${loadavg()[0].toFixed(1)} (with other jobs on the machine absolute times mean little; the ratios come from paired runs).
Command: \`npx tsx scripts/bench/quantize-transformer.ts\` — ${new Date().toISOString().slice(0, 10)}, ${machineLine()}.
Transformer classifiers from \`test/fixtures/transformer.ts\` (built with the project's ONNX builder, seeded random
weights), batch ${BATCH}; latency ratio = INT8 p50 / FP32 p50, all variants of a model and FP32 measured
block-alternating in one run (threads = cores, not spinning); "chosen" is what \`fleetml quantize\` writes by the same
rule (the fastest of static fused, MatMul-only and dynamic that is faster, else FP32); fidelity against FP32 on 256 random inputs (no trained weights: top-1 agreement and
cosine, not accuracy). Targets (issue 16): static INT8 ≤ 0.7× FP32 at batch 32, size ≤ 0.3×; a tiny model where INT8
cannot win is reported \`not-faster\`.

${markdownTable(['model', 'variant', 'FP32 ms', 'INT8 ms', 'latency ×', 'size ×', 'top-1 agree %', 'cosine', 'verdict', 'fleetml quantize'], rows)}
`;
await writeBenchmarkSection('Transformers (issue 16)', body);
