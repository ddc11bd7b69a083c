/**
 * The agent's one door to onnxruntime-node: which execution providers load here, session
 * creation with per-profile options, and tensors for feeds. Nothing else in agent/ imports
 * onnxruntime-node.
 *
 * onnxruntime is loaded lazily, and the provider probe runs in a short-lived child process:
 * an idle agent with no model never maps the native library (about 26 MB of RSS).
 */
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { arch, availableParallelism } from 'node:os';
import type * as OrtModule from 'onnxruntime-node';
import { FleetError } from '../../shared/errors/index.js';
import type { ExecutionProvider } from '../../shared/protocol/index.js';

type Ort = typeof OrtModule;
export type OrtSession = OrtModule.InferenceSession;
export type OrtTensor = OrtModule.Tensor;
export type OrtFeeds = Record<string, OrtModule.Tensor>;

let ortModule: Ort | undefined;

/** Loads onnxruntime-node on first use. */
export async function loadOrt(): Promise<Ort> {
  ortModule ??= (await import('onnxruntime-node')) as Ort;
  return ortModule;
}

function loadedOrt(): Ort {
  if (!ortModule) throw new FleetError('INTERNAL', 'onnxruntime is used before loadOrt()');
  return ortModule;
}

/** Preference order when choosing automatically: fastest first. */
export const EP_PREFERENCE: readonly ExecutionProvider[] = ['tensorrt', 'cuda', 'cpu'];

export interface SessionProfile {
  /** Execution provider to use. Default 'cpu'. */
  ep?: ExecutionProvider;
  /**
   * Intra-op threads; 0 = one per core of the device (onnxruntime's own choice can be fewer,
   * which made `fleetml bench` slower than a bare loop). Default 0.
   */
  intraOpThreads?: number;
  /** Graph optimisation level. Default 'all'. */
  graphOptimizationLevel?: 'disabled' | 'basic' | 'extended' | 'all';
}

export const DEFAULT_SESSION_PROFILE: Required<SessionProfile> = {
  ep: 'cpu',
  intraOpThreads: 0,
  graphOptimizationLevel: 'all',
};

// A one-node float model (Relu on [1]), enough to see whether a provider registers and runs.
const PROBE_MODEL = Buffer.from(
  'CAgSB2ZsZWV0bWwaBTAuMS4wOjcKDAoBeBIBeSIEUmVsdRIFcHJvYmVaDwoBeBIKCggIARIECgIIAWIPCgF5EgoKCAgBEgQKAggBQgQKABAN',
  'base64',
);

export interface ProviderProbe {
  /** Providers that created a session and ran, in preference order. */
  available: ExecutionProvider[];
  /** Why each other candidate did not load. */
  failures: Partial<Record<ExecutionProvider, string>>;
  /** A hint for the operator when an accelerator is missing (e.g. arm64 builds are CPU only). */
  hint: string | null;
}

let cachedProbe: Promise<ProviderProbe> | undefined;

/** Tries each candidate provider with a tiny session (in a child process); cached for the process. */
export function detectExecutionProviders(): Promise<ProviderProbe> {
  cachedProbe ??= probeInChild().then(({ available, failures, version }) => {
    ortVersion = version;
    return { available, failures, hint: providerHint(available) };
  });
  return cachedProbe;
}

let ortVersion = 'unknown';

// Runs in a plain `node` child (CommonJS, no loader): requires onnxruntime-node by absolute path.
const PROBE_SCRIPT = `
const ort = require(process.argv[1]);
ort.env.logLevel = 'fatal';
const model = Buffer.from(process.argv[2], 'base64');
const bundled = new Set(ort.listSupportedBackends().map((b) => b.name));
(async () => {
  const available = [];
  const failures = {};
  for (const ep of JSON.parse(process.argv[3])) {
    if (!bundled.has(ep)) { failures[ep] = 'this onnxruntime-node build has no ' + ep + ' provider'; continue; }
    try {
      const s = await ort.InferenceSession.create(model, { executionProviders: [ep], logSeverityLevel: 4 });
      await s.run({ x: new ort.Tensor('float32', Float32Array.of(1), [1]) });
      await s.release();
      available.push(ep);
    } catch (e) { failures[ep] = String(e && e.message || e).split('\\n')[0].slice(0, 300); }
  }
  process.stdout.write(JSON.stringify({ available, failures, version: ort.env.versions.node || ort.env.versions.common }));
})();
`;

function probeInChild(): Promise<{
  available: ExecutionProvider[];
  failures: ProviderProbe['failures'];
  version: string;
}> {
  const ortPath = createRequire(import.meta.url).resolve('onnxruntime-node');
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['-e', PROBE_SCRIPT, ortPath, PROBE_MODEL.toString('base64'), JSON.stringify(EP_PREFERENCE)],
      { timeout: 60_000, maxBuffer: 1 << 20 },
      (error, stdout) => {
        try {
          resolve(JSON.parse(stdout));
        } catch {
          const reason = error ? firstLine(error.message) : 'probe printed nothing';
          // Without a probe, CPU is the only provider worth trying; createSession will tell.
          resolve({ available: ['cpu'], failures: { cuda: reason, tensorrt: reason }, version: 'unknown' });
        }
      },
    );
  });
}

function firstLine(text: string): string {
  return text.split('\n')[0].slice(0, 300);
}

function providerHint(available: ExecutionProvider[]): string | null {
  if (available.includes('cuda') || available.includes('tensorrt')) return null;
  if (arch() === 'arm64') {
    return (
      'onnxruntime-node ships CPU-only builds for arm64. On a Jetson, build onnxruntime with ' +
      "--use_cuda/--use_tensorrt (or take the JetPack wheel's libonnxruntime.so) and place " +
      'libonnxruntime.so.1 and libonnxruntime_providers_{shared,cuda,tensorrt}.so next to ' +
      'node_modules/onnxruntime-node/bin/napi-v6/linux/arm64/onnxruntime_binding.node.'
    );
  }
  return (
    'CUDA/TensorRT providers did not load; on linux x64 install onnxruntime-node without ' +
    '`onnxruntime-node-install=skip` (it downloads the CUDA 12 providers) and make CUDA 12 / ' +
    'TensorRT libraries visible on LD_LIBRARY_PATH.'
  );
}

/** 'auto' resolves to the first available provider in TensorRT -> CUDA -> CPU order. */
export async function chooseExecutionProvider(
  requested: ExecutionProvider | 'auto',
): Promise<ExecutionProvider> {
  const probe = await detectExecutionProviders();
  if (requested === 'auto') return probe.available[0] ?? 'cpu';
  if (!probe.available.includes(requested)) {
    throw new FleetError(
      'RUNTIME_LOAD',
      `execution provider ${requested} does not load here: ${probe.failures[requested] ?? 'unknown'}` +
        (probe.hint ? `. ${probe.hint}` : ''),
      { ep: requested, available: probe.available },
    );
  }
  return requested;
}

/** The intra-op thread count a session gets: the setting, or every core when it is 0. */
export function intraOpThreadsFor(setting: number): number {
  return setting > 0 ? setting : availableParallelism();
}

/** Creates a session from a file path or bytes; RUNTIME_LOAD with onnxruntime's reason. */
export async function createSession(
  model: string | Uint8Array,
  profile: SessionProfile = {},
): Promise<OrtSession> {
  const ort = await loadOrt();
  const p = { ...DEFAULT_SESSION_PROFILE, ...profile };
  const options: OrtModule.InferenceSession.SessionOptions = {
    executionProviders: p.ep === 'cpu' ? ['cpu'] : [p.ep, 'cpu'],
    intraOpNumThreads: intraOpThreadsFor(p.intraOpThreads),
    graphOptimizationLevel: p.graphOptimizationLevel,
    logSeverityLevel: 3,
  };
  try {
    return typeof model === 'string'
      ? await ort.InferenceSession.create(model, options)
      : await ort.InferenceSession.create(model, options);
  } catch (error) {
    const where = typeof model === 'string' ? ` ${model}` : '';
    throw new FleetError(
      'RUNTIME_LOAD',
      `onnxruntime could not load the model${where}: ${firstLine((error as Error).message)}`,
      {
        ep: p.ep,
      },
    );
  }
}

/** Version reported by the provider probe (or the loaded module). */
export function onnxruntimeVersion(): string {
  return ortModule
    ? (ortModule.env.versions.node ?? ortModule.env.versions.common ?? ortVersion)
    : ortVersion;
}

export interface TensorInfo {
  name: string;
  type: string;
  shape: (number | string)[];
}

export function inputInfo(session: OrtSession): TensorInfo[] {
  return session.inputMetadata.map((m) =>
    m.isTensor
      ? { name: m.name, type: m.type, shape: [...m.shape] }
      : { name: m.name, type: 'unknown', shape: [] },
  );
}

export function outputInfo(session: OrtSession): TensorInfo[] {
  return session.outputMetadata.map((m) =>
    m.isTensor
      ? { name: m.name, type: m.type, shape: [...m.shape] }
      : { name: m.name, type: 'unknown', shape: [] },
  );
}

/** Needs onnxruntime loaded (any session created, or loadOrt()). */
export function makeTensor(type: string, data: OrtModule.Tensor['data'], dims: readonly number[]): OrtTensor {
  return new (loadedOrt().Tensor)(type as 'float32', data as Float32Array, dims);
}
