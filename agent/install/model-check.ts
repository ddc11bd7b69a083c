/**
 * Loads an untrusted model and runs it once in a throw-away child process. A model that hangs
 * onnxruntime's native code cannot be interrupted inside the agent (neither a promise timeout
 * nor a worker thread's terminate() reaches a thread stuck in C++), and one that crashes it
 * would take the agent down: the child is killed after `timeoutMs` instead, and its death by a
 * signal is reported. Only a model that passed here is loaded in-process.
 */
import { spawn } from 'node:child_process';
import { FleetError } from '../../shared/errors/index.js';
import { onnxruntimeSource, providerEnvironment, type SessionProfile } from '../runtime/ort.js';

export interface ModelCheckOptions {
  /** Kill the check after this many ms (RUNTIME_TIMEOUT). */
  timeoutMs: number;
  /** Last-resort value for symbolic input dimensions that `servingShapes` leaves open. */
  dynamicDim: number;
  /** The manifest's serving shapes (input name -> dims); default none. */
  servingShapes?: Record<string, number[]>;
  profile: Required<SessionProfile>;
}

export interface ModelCheckResult {
  loadMs: number;
  runMs: number;
  /** Process id of the child (tests use it to inject a crash). */
  pid: number;
}

// Plain `node` (CommonJS, no loader, so it works from the esbuild device bundle as well):
// create the session, fill every input with small numbers, run once, print one JSON line.
const CHECK_SCRIPT = `
const ort = require(process.argv[1]);
const o = JSON.parse(process.argv[3]);
ort.env.logLevel = 'fatal';
const out = (v) => process.stdout.write(JSON.stringify(v) + '\\n');
const fill = { float32: Float32Array, float64: Float64Array, int32: Int32Array, uint8: Uint8Array, int8: Int8Array, bool: Uint8Array };
(async () => {
  let stage = 'load';
  try {
    const t0 = performance.now();
    const s = await ort.InferenceSession.create(process.argv[2], {
      executionProviders: o.ep === 'cpu' ? ['cpu'] : [o.ep, 'cpu'],
      intraOpNumThreads: o.intraOpThreads, graphOptimizationLevel: o.graphOptimizationLevel, logSeverityLevel: 3,
    });
    const loadMs = performance.now() - t0;
    stage = 'run';
    const feeds = {};
    for (const m of s.inputMetadata) {
      if (!m.isTensor) throw new Error('input ' + m.name + ' is not a tensor');
      const dims = o.servingShapes[m.name] || m.shape.map((d) => (typeof d === 'number' && d > 0 ? d : o.dynamicDim));
      const n = dims.reduce((a, b) => a * b, 1);
      const data = m.type === 'int64' ? new BigInt64Array(n) : new (fill[m.type] || Float32Array)(n);
      feeds[m.name] = new ort.Tensor(m.type, data, dims);
    }
    const t1 = performance.now();
    await s.run(feeds);
    out({ ok: true, loadMs, runMs: performance.now() - t1 });
  } catch (e) {
    out({ ok: false, stage, message: String((e && e.message) || e).split('\\n')[0].slice(0, 500) });
  }
})();
`;

export function checkModelInChild(modelPath: string, options: ModelCheckOptions): Promise<ModelCheckResult> {
  // The onnxruntime the agent uses (a Jetson user's own, with --onnxruntime), and for TensorRT the
  // engine cache settings: the engine this check builds is the one install and probe load.
  const ortPath = onnxruntimeSource().entry;
  const settings = JSON.stringify({
    ...options.profile,
    dynamicDim: options.dynamicDim,
    servingShapes: options.servingShapes ?? {},
  });
  const env = { ...process.env, ...providerEnvironment(options.profile.ep, options.profile.precision) };
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', CHECK_SCRIPT, ortPath, modelPath, settings], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env,
    });
    const pid = child.pid ?? -1;
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr!.on('data', (chunk: Buffer) => {
      if (stderr.length < 4096) stderr += chunk.toString();
    });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, options.timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(
        new FleetError('RUNTIME_LOAD', `cannot start the model check: ${error.message}`, { crashed: true }),
      );
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) {
        reject(
          new FleetError(
            'RUNTIME_TIMEOUT',
            `onnxruntime did not load and run ${modelPath} within ${options.timeoutMs} ms; the check was killed`,
            { timeoutMs: options.timeoutMs },
          ),
        );
        return;
      }
      let answer: { ok: boolean; stage?: string; message?: string; loadMs?: number; runMs?: number } | null =
        null;
      try {
        answer = JSON.parse(stdout.trim().split('\n').at(-1) ?? '');
      } catch {
        answer = null;
      }
      if (answer?.ok) {
        resolve({ loadMs: answer.loadMs ?? 0, runMs: answer.runMs ?? 0, pid });
        return;
      }
      if (answer) {
        const code = answer.stage === 'run' ? 'RUNTIME_RUN' : 'RUNTIME_LOAD';
        const what = answer.stage === 'run' ? 'run' : 'load';
        reject(new FleetError(code, `onnxruntime could not ${what} ${modelPath}: ${answer.message}`));
        return;
      }
      const how = signal ? `signal ${signal}` : `exit code ${code}`;
      const last = stderr.trim().split('\n').at(-1)?.slice(0, 300) ?? '';
      reject(
        new FleetError(
          'RUNTIME_LOAD',
          `onnxruntime crashed loading ${modelPath} (${how})${last ? `: ${last}` : ''}`,
          { signal, exitCode: code, crashed: true },
        ),
      );
    });
  });
}

/**
 * The check, once more if its process died without an answer: a model that crashes onnxruntime
 * crashes it every time, while a process lost to the device (memory or thread limits on a busy
 * Pi) should not cost the fleet a rollout. A clean refusal or a timeout is final at once.
 */
export async function checkModelIsolated(
  modelPath: string,
  options: ModelCheckOptions,
  attempts = 2,
): Promise<ModelCheckResult> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await checkModelInChild(modelPath, options);
    } catch (error) {
      const crashed = error instanceof FleetError && error.details?.crashed === true;
      if (!crashed || attempt >= attempts) {
        if (crashed && attempts > 1) {
          throw new FleetError('RUNTIME_LOAD', `${(error as Error).message} (${attempts} attempts)`, {
            ...(error as FleetError).details,
            attempts,
          });
        }
        throw error;
      }
    }
  }
}
