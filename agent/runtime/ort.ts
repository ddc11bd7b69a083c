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
import { bundledOnnxruntime, type OnnxruntimeSource } from './onnxruntime-source.js';
import { type Precision, type TensorRtSettings, tensorRtEnvironment } from './tensorrt.js';

type Ort = typeof OrtModule;
export type OrtSession = OrtModule.InferenceSession;
export type OrtTensor = OrtModule.Tensor;
export type OrtFeeds = Record<string, OrtModule.Tensor>;

let ortModule: Ort | undefined;
// One onnxruntime per process (a native library loads once): chosen before its first use.
let source: OnnxruntimeSource | undefined;
let tensorRt: TensorRtSettings | undefined;

/**
 * Chooses the onnxruntime to load (agent start: --onnxruntime) and where TensorRT caches its
 * engines. Must run before the first probe or session.
 */
export function configureOnnxruntime(options: {
  source?: OnnxruntimeSource;
  tensorRt?: TensorRtSettings;
}): void {
  const next = options.source ?? bundledOnnxruntime();
  if ((ortModule || cachedProbe) && next.entry !== onnxruntimeSource().entry) {
    throw new FleetError(
      'CONFIG_INVALID',
      `onnxruntime ${onnxruntimeSource().origin} is already loaded in this process`,
    );
  }
  source = next;
  // Several agents in one process (tests) share the first one's caches, as they share the library.
  tensorRt ??= options.tensorRt;
}

/** The onnxruntime in use (the installed onnxruntime-node unless configured otherwise). */
export function onnxruntimeSource(): OnnxruntimeSource {
  source ??= bundledOnnxruntime();
  return source;
}

/** Environment a TensorRT session (here or in the model check's child) needs; {} for other providers. */
export function providerEnvironment(
  ep: ExecutionProvider,
  precision: Precision = 'fp32',
): Record<string, string> {
  return ep === 'tensorrt' && tensorRt ? tensorRtEnvironment(tensorRt, precision) : {};
}

/** Loads onnxruntime-node on first use. */
export async function loadOrt(): Promise<Ort> {
  const { kind, entry } = onnxruntimeSource();
  ortModule ??= (kind === 'bundled' ? await import('onnxruntime-node') : createRequire(entry)(entry)) as Ort;
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
  /** The model's precision: TensorRT's FP16/INT8 flags follow it. Default 'fp32'. */
  precision?: Precision;
}

export const DEFAULT_SESSION_PROFILE: Required<SessionProfile> = {
  ep: 'cpu',
  intraOpThreads: 0,
  graphOptimizationLevel: 'all',
  precision: 'fp32',
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
  /** Which onnxruntime was probed: bundled, a user's package or a user's library, and its path. */
  onnxruntime: { kind: OnnxruntimeSource['kind']; path: string };
}

let cachedProbe: Promise<ProviderProbe> | undefined;

/** Tries each candidate provider with a tiny session (in a child process); cached for the process. */
export function detectExecutionProviders(): Promise<ProviderProbe> {
  const { kind, origin } = onnxruntimeSource();
  cachedProbe ??= probeInChild().then(({ available, failures, version }) => {
    ortVersion = version;
    return { available, failures, hint: providerHint(available), onnxruntime: { kind, path: origin } };
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
    if (!bundled.has(ep)) { failures[ep] = 'the onnxruntime-node binding ' + process.argv[1] + ' was built without the ' + ep + ' provider'; continue; }
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
  const ortPath = onnxruntimeSource().entry;
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['-e', PROBE_SCRIPT, ortPath, PROBE_MODEL.toString('base64'), JSON.stringify(EP_PREFERENCE)],
      // The probe's TensorRT session uses the same caches as every other.
      { timeout: 60_000, maxBuffer: 1 << 20, env: { ...process.env, ...providerEnvironment('tensorrt') } },
      (error, stdout, stderr) => {
        try {
          resolve(JSON.parse(stdout));
        } catch {
          // onnxruntime itself did not load (e.g. a user's libonnxruntime that the binding cannot use).
          const thrown = stderr.split('\n').find((l) => /Error/.test(l));
          const reason =
            thrown?.trim().slice(0, 300) ?? (error ? firstLine(error.message) : 'probe printed nothing');
          // A library that does not load leaves nothing; a probe that died otherwise (a slow device's
          // timeout) leaves CPU, the one provider worth trying: createSession will tell.
          const failures = { cuda: reason, tensorrt: reason };
          resolve(
            thrown
              ? { available: [], failures: { ...failures, cpu: reason }, version: 'unknown' }
              : { available: ['cpu'], failures, version: 'unknown' },
          );
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
      'onnxruntime-node ships CPU-only builds for arm64. On a Jetson, build onnxruntime-node with ' +
      '--build_nodejs --use_cuda --use_tensorrt and start the agent with --onnxruntime <its package ' +
      'directory> (see docs/devices.md).'
    );
  }
  return (
    'CUDA/TensorRT providers did not load; on linux x64 install onnxruntime-node with ' +
    '`ONNXRUNTIME_NODE_INSTALL=cuda12` (it downloads the CUDA 12 providers) and make CUDA 12 / ' +
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
  // TensorRT reads its cache paths and precision flags from the environment at session creation.
  Object.assign(process.env, providerEnvironment(p.ep, p.precision));
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
