/**
 * Runs golden inputs through a model in a throw-away child process, killed after a timeout: the
 * cloud computes golden sets for every upload, and a model that hangs or crashes onnxruntime
 * must take down only the child, never the controller (test/faults/bad-model.test.ts).
 */
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { FleetError } from '../../../shared/errors/index.js';
import type { GoldenTensor } from '../../../shared/manifest/index.js';

type Case = Record<string, GoldenTensor>;

// Plain `node` (CommonJS, no loader). Input on stdin: {model: base64, cases: [{name: tensor}]};
// output: one JSON line, {ok: true, outputs: [{name: tensor}]} or {ok: false, message}.
const RUN_SCRIPT = `
const ort = require(process.argv[1]);
ort.env.logLevel = 'fatal';
const CTORS = { float32: Float32Array, int64: BigInt64Array, int32: Int32Array, int8: Int8Array, uint8: Uint8Array, bool: Uint8Array };
const toOrt = (t) => {
  const b = Buffer.from(t.data, 'base64');
  const copy = new Uint8Array(b.length); copy.set(b);
  const C = CTORS[t.type];
  return new ort.Tensor(t.type, new C(copy.buffer, 0, copy.length / C.BYTES_PER_ELEMENT), t.dims);
};
const chunks = [];
process.stdin.on('data', (c) => chunks.push(c));
process.stdin.on('end', async () => {
  try {
    const job = JSON.parse(Buffer.concat(chunks).toString());
    const session = await ort.InferenceSession.create(Buffer.from(job.model, 'base64'), { logSeverityLevel: 4, intraOpNumThreads: 1 });
    const outputs = [];
    for (const c of job.cases) {
      const feeds = {};
      for (const [name, t] of Object.entries(c)) feeds[name] = toOrt(t);
      const out = await session.run(feeds);
      const row = {};
      for (const [name, t] of Object.entries(out)) {
        if (!(t.type in CTORS)) continue;
        const d = t.data;
        row[name] = { type: t.type, dims: [...t.dims], data: Buffer.from(d.buffer, d.byteOffset, d.byteLength).toString('base64') };
      }
      outputs.push(row);
    }
    process.stdout.write(JSON.stringify({ ok: true, outputs }) + '\\n');
  } catch (e) {
    process.stdout.write(JSON.stringify({ ok: false, message: String((e && e.message) || e).split('\\n')[0].slice(0, 600) }) + '\\n');
  }
});
`;

export interface IsolatedRunOptions {
  /** Kill the child after this many ms (RUNTIME_TIMEOUT). Default 60 000. */
  timeoutMs: number;
}

/** The model's outputs (only types a golden set carries) for each case, computed in a child. */
export function runCasesIsolated(
  model: Uint8Array,
  cases: Case[],
  options: IsolatedRunOptions,
): Promise<Case[]> {
  const ortPath = createRequire(import.meta.url).resolve('onnxruntime-node');
  const job = JSON.stringify({
    model: Buffer.from(model.buffer, model.byteOffset, model.byteLength).toString('base64'),
    cases,
  });
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', RUN_SCRIPT, ortPath], { stdio: ['pipe', 'pipe', 'ignore'] });
    let stdout = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, options.timeoutMs);
    child.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stdin!.on('error', () => {}); // the child may die before reading everything
    child.stdin!.end(job);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(new FleetError('RUNTIME_LOAD', `cannot start the golden run: ${error.message}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) {
        reject(new FleetError('RUNTIME_TIMEOUT', `the model did not run within ${options.timeoutMs} ms`));
        return;
      }
      let answer: { ok: boolean; outputs?: Case[]; message?: string } | null = null;
      try {
        answer = JSON.parse(stdout.trim().split('\n').at(-1) ?? '');
      } catch {
        answer = null;
      }
      if (answer?.ok && answer.outputs) return resolve(answer.outputs);
      reject(
        new FleetError(
          'RUNTIME_RUN',
          answer
            ? `onnxruntime cannot run the model: ${answer.message}`
            : `onnxruntime crashed running the model (${signal ?? `exit code ${code}`})`,
        ),
      );
    });
  });
}
