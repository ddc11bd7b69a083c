/**
 * The upload check (issue 14): before the cloud accepts a model, onnxruntime loads it in a
 * throw-away child process, so that a model with an unknown operator, a broken graph or
 * external data without its files is refused at upload with a coded error, not on the device;
 * and a model that crashes or hangs onnxruntime takes down only the child.
 */
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { FleetError } from '../../../shared/errors/index.js';

export interface LoadCheckOptions {
  /** Kill the child after this many ms (RUNTIME_TIMEOUT). Default 60 000. */
  timeoutMs?: number;
}

export const LOAD_CHECK_DEFAULTS = { timeoutMs: 60_000 };

// Plain `node` (CommonJS, no loader): read the model from stdin, create a session, print one line.
const CHECK_SCRIPT = `
const ort = require(process.argv[1]);
ort.env.logLevel = 'fatal';
const chunks = [];
process.stdin.on('data', (c) => chunks.push(c));
process.stdin.on('end', async () => {
  try {
    await ort.InferenceSession.create(new Uint8Array(Buffer.concat(chunks)), { logSeverityLevel: 4, graphOptimizationLevel: 'disabled' });
    process.stdout.write(JSON.stringify({ ok: true }) + '\\n');
  } catch (e) {
    process.stdout.write(JSON.stringify({ ok: false, message: String((e && e.message) || e).split('\\n')[0].slice(0, 600) }) + '\\n');
  }
});
`;

/** onnxruntime's load message -> the catalog code that says what is wrong with the file. */
export function classifyLoadFailure(
  message: string,
): 'ONNX_UNSUPPORTED_OP' | 'ONNX_EXTERNAL_DATA' | 'ONNX_INVALID' {
  if (
    /no op(erator)? registered|could not find an implementation|unrecognized attribute|is not a registered function\/op/i.test(
      message,
    )
  )
    return 'ONNX_UNSUPPORTED_OP';
  if (/external (data|initializer)|GetExtDataFromTensorProto|location/i.test(message))
    return 'ONNX_EXTERNAL_DATA';
  return 'ONNX_INVALID';
}

/** Resolves when onnxruntime loads `bytes`; otherwise a coded FleetError naming the reason. */
export function checkModelLoads(bytes: Uint8Array, options: LoadCheckOptions = {}): Promise<void> {
  const timeoutMs = options.timeoutMs ?? LOAD_CHECK_DEFAULTS.timeoutMs;
  const ortPath = createRequire(import.meta.url).resolve('onnxruntime-node');
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', CHECK_SCRIPT, ortPath], {
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    let stdout = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stdin!.on('error', () => {}); // the child may die before reading everything
    child.stdin!.end(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(new FleetError('RUNTIME_LOAD', `cannot start the load check: ${error.message}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) {
        reject(
          new FleetError('RUNTIME_TIMEOUT', `onnxruntime did not load the model within ${timeoutMs} ms`),
        );
        return;
      }
      let answer: { ok: boolean; message?: string } | null = null;
      try {
        answer = JSON.parse(stdout.trim().split('\n').at(-1) ?? '');
      } catch {
        answer = null;
      }
      if (answer?.ok) return resolve();
      if (answer) {
        const message = answer.message ?? 'unknown error';
        reject(new FleetError(classifyLoadFailure(message), `onnxruntime cannot load the model: ${message}`));
        return;
      }
      reject(
        new FleetError(
          'RUNTIME_LOAD',
          `onnxruntime crashed loading the model (${signal ?? `exit code ${code}`})`,
          {
            signal,
            exitCode: code,
          },
        ),
      );
    });
  });
}
