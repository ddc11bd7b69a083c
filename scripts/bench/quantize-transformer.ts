/**
 * Transformers, INT8 against FP32 (issue 16): transformer classifiers built with the project's
 * ONNX builder (test/fixtures/transformer.ts; opset 14 with decomposed LayerNorm/GELU as
 * PyTorch exports them, and opset 17), random weights. For each: static INT8 without and with
 * the transformer fusion, and dynamic INT8; whole-model latency against FP32 at batch 32
 * (block-alternating, threads = cores, not spinning: evaluate/verdict.ts), size, and fidelity
 * (top-1 agreement and cosine with FP32 on 256 inputs; no trained weights, so no accuracy).
 * Writes the "## Transformers (issue 16)" section of BENCHMARKS.md.
 * Run: npx tsx scripts/bench/quantize-transformer.ts
 */
import { loadavg } from 'node:os';
import { agreement, argmaxRows, cosine } from '../../cloud/compression/evaluate/metrics.js';
import { benchmarkFeeds, measureSpeedVerdict } from '../../cloud/compression/evaluate/verdict.js';
import { runOnce } from '../../cloud/compression/onnx/ort-eval.js';
import { encodeModel } from '../../cloud/compression/onnx/proto.js';
import type { ModelProto } from '../../cloud/compression/onnx/types.js';
import { batchTensor } from '../../cloud/compression/quantize/calibrate/data.js';
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
  const variants: Array<[string, () => Promise<ModelProto>]> = [
    [
      'static INT8, no fusion',
      async () => buildQdq(await calibrateModel(float, calibration, { fuseTransformer: false })).model,
    ],
    ['static INT8, fused', async () => buildQdq(await calibrateModel(float, calibration)).model],
    ['dynamic INT8', async () => (await quantizeDynamic(float)).model],
  ];
  for (const [name, build] of variants) {
    const q = await build();
    const bytes = encodeModel(q);
    const out = await logits(q, evalSet);
    const top1 = 100 * agreement(argmaxRows(out, spec.classes), argmaxRows(reference, spec.classes));
    let cos = 0;
    for (let i = 0; i < evalSet.count; i++)
      cos += cosine(
        reference.subarray(i * spec.classes, (i + 1) * spec.classes),
        out.subarray(i * spec.classes, (i + 1) * spec.classes),
      );
    const v = await measureSpeedVerdict(floatBytes, bytes, feeds, { batch: BATCH, seconds: 4 });
    const row = [
      label,
      name,
      v.fp32Ms.toFixed(2),
      v.int8Ms.toFixed(2),
      v.latencyRatio.toFixed(2),
      (bytes.length / floatBytes.length).toFixed(2),
      top1.toFixed(1),
      (cos / evalSet.count).toFixed(4),
      v.verdict,
    ];
    log(row.join(' | '));
    rows.push(row);
  }
}

const body = `Load average at the end: ${loadavg()[0].toFixed(1)} (with other jobs on the machine absolute times mean little; the ratios come from paired runs).
Command: \`npx tsx scripts/bench/quantize-transformer.ts\` — ${new Date().toISOString().slice(0, 10)}, ${machineLine()}.
Transformer classifiers from \`test/fixtures/transformer.ts\` (built with the project's ONNX builder, seeded random
weights), batch ${BATCH}; latency ratio = INT8 p50 / FP32 p50 measured block-alternating in the same run
(threads = cores, not spinning); fidelity against FP32 on 256 random inputs (no trained weights: top-1 agreement and
cosine, not accuracy). Targets (issue 16): static INT8 ≤ 0.7× FP32 at batch 32, size ≤ 0.3×; a tiny model where INT8
cannot win is reported \`not-faster\`.

${markdownTable(['model', 'variant', 'FP32 ms', 'INT8 ms', 'latency ×', 'size ×', 'top-1 agree %', 'cosine', 'verdict'], rows)}
`;
await writeBenchmarkSection('Transformers (issue 16)', body);
