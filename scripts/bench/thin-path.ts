/**
 * Thin-path benchmark (issue 2): the time from `deploy` to the first benchmark report, and the
 * agent's benchmark of the sample model against a bare onnxruntime loop on the same model and
 * session options (the baseline, measured in the same run).
 * Run: npx tsx scripts/bench/thin-path.ts
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { resolveConfig } from '../../agent/config.js';
import { startAgent } from '../../agent/main.js';
import { decodeModel, encodeModel } from '../../cloud/compression/onnx/proto.js';
import { startCloud } from '../../cloud/main.js';
import { createLogger } from '../../shared/logger.js';
import { machineLine, markdownTable, writeBenchmarkSection } from './report.js';

const SAMPLE = new URL('../../cloud/samples/mnist-mlp.onnx', import.meta.url);
const ROUNDS = 5;
const RUNS = 500;

async function until<T>(probe: () => Promise<T | null | undefined>, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== null && v !== undefined) return v;
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

async function bareLoop(bytes: Uint8Array): Promise<{ p50: number; p99: number }> {
  const session = await ort.InferenceSession.create(bytes, {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
  });
  const input = new ort.Tensor(
    'float32',
    Float32Array.from({ length: 784 }, () => Math.random()),
    [1, 1, 28, 28],
  );
  for (let i = 0; i < 20; i++) await session.run({ input });
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = process.hrtime.bigint();
    await session.run({ input });
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  await session.release();
  times.sort((a, b) => a - b);
  return { p50: percentile(times, 50), p99: percentile(times, 99) };
}

const logger = createLogger({ name: 'bench', level: 'silent' });
const dir = await mkdtemp(join(tmpdir(), 'fleetml-bench-'));
const cloud = await startCloud({ dataDir: join(dir, 'cloud'), httpPort: 0, mqttPort: 0, logger });
const { token } = await cloud.services.tokens.createEnrollToken();
const agent = await startAgent({
  config: resolveConfig({
    cloudUrl: cloud.mqttUrl,
    enrollToken: token,
    dataDir: join(dir, 'agent'),
    benchRuns: RUNS,
    benchWarmupRuns: 20,
    benchBudgetMs: 30_000,
  }),
  logger,
});
const deviceId = agent.identity.deviceId;
const bytes = await readFile(SAMPLE);

const deployToReport: number[] = [];
const agentP50: number[] = [];
const bareP50: number[] = [];
for (let round = 0; round < ROUNDS; round++) {
  // A new doc string makes new bytes, so every round is a real download and install.
  const variant = decodeModel(bytes);
  variant.docString = `thin-path benchmark round ${round}`;
  const model = await cloud.services.models.add(encodeModel(variant), { name: 'mnist-mlp' });
  const before = await cloud.services.telemetry.latestBench(deviceId);
  const t0 = performance.now();
  await cloud.services.targets.setModel(deviceId, model);
  const report = await until(async () => {
    const latest = await cloud.services.telemetry.latestBench(deviceId);
    return latest && latest.at !== before?.at ? latest : null;
  });
  deployToReport.push(performance.now() - t0);
  agentP50.push(report.p50Ms);
  bareP50.push((await bareLoop(bytes)).p50);
}
await agent.stop();
await cloud.stop();
await rm(dir, { recursive: true, force: true });

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rows = [
  ['deploy → first benchmark report (ms, median of rounds)', median(deployToReport).toFixed(0), '—'],
  [
    'agent benchmark p50 (ms)',
    median(agentP50).toFixed(4),
    `${(median(agentP50) / median(bareP50)).toFixed(3)} × bare loop`,
  ],
  ['bare onnxruntime loop p50 (ms, baseline)', median(bareP50).toFixed(4), '1.000'],
];
const body = [
  `Command: \`npx tsx scripts/bench/thin-path.ts\` — ${new Date().toISOString().slice(0, 10)} — ${machineLine()}`,
  '',
  `Sample model \`cloud/samples/mnist-mlp.onnx\` (784-64-10 MLP, ${bytes.length} bytes), batch 1, ${RUNS} timed runs,`,
  `${ROUNDS} deploy rounds through the embedded broker on loopback (download, SHA-256 check, load, golden check, benchmark).`,
  '',
  markdownTable(['measure', 'value', 'ratio'], rows),
  '',
  `Deploy → report per round (ms): ${deployToReport.map((t) => t.toFixed(0)).join(', ')}.`,
].join('\n');
await writeBenchmarkSection('Thin path (issue 2)', body);
process.stdout.write(`${body}\n`);
