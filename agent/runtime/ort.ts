/**
 * The agent's one door to onnxruntime-node: which execution providers load here, session
 * creation with per-profile options, and tensors for feeds. Nothing else in agent/ imports
 * onnxruntime-node.
 */
import { arch } from 'node:os';
import * as ort from 'onnxruntime-node';
import { FleetError } from '../../shared/errors/index.js';
import type { ExecutionProvider } from '../../shared/protocol/index.js';

export type OrtSession = ort.InferenceSession;
export type OrtTensor = ort.Tensor;
export type OrtFeeds = Record<string, ort.Tensor>;
export { ort };

/** Preference order when choosing automatically: fastest first. */
export const EP_PREFERENCE: readonly ExecutionProvider[] = ['tensorrt', 'cuda', 'cpu'];

export interface SessionProfile {
  /** Execution provider to use. Default 'cpu'. */
  ep?: ExecutionProvider;
  /** Intra-op threads; 0 = onnxruntime's choice. Default 0. */
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

/** Tries each candidate provider with a tiny session; cached for the process. */
export function detectExecutionProviders(): Promise<ProviderProbe> {
  cachedProbe ??= probeProviders();
  return cachedProbe;
}

async function probeProviders(): Promise<ProviderProbe> {
  // The provider bridge logs a scary error for every provider library it cannot open; the
  // failure is expected and reported below, so keep the global log quiet (applies at ORT init).
  ort.env.logLevel = 'fatal';
  const bundled = new Set(ort.listSupportedBackends().map((b) => b.name));
  const available: ExecutionProvider[] = [];
  const failures: ProviderProbe['failures'] = {};
  for (const ep of EP_PREFERENCE) {
    if (!bundled.has(ep)) {
      failures[ep] = `this onnxruntime-node build has no ${ep} provider`;
      continue;
    }
    try {
      const session = await ort.InferenceSession.create(PROBE_MODEL, {
        executionProviders: [ep],
        logSeverityLevel: 4,
      });
      await session.run({ x: new ort.Tensor('float32', Float32Array.of(1), [1]) });
      await session.release();
      available.push(ep);
    } catch (error) {
      failures[ep] = firstLine((error as Error).message);
    }
  }
  return { available, failures, hint: providerHint(available) };
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

/** Creates a session from a file path or bytes; RUNTIME_LOAD with onnxruntime's reason. */
export async function createSession(
  model: string | Uint8Array,
  profile: SessionProfile = {},
): Promise<OrtSession> {
  const p = { ...DEFAULT_SESSION_PROFILE, ...profile };
  const options: ort.InferenceSession.SessionOptions = {
    executionProviders: p.ep === 'cpu' ? ['cpu'] : [p.ep, 'cpu'],
    intraOpNumThreads: p.intraOpThreads,
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

export function onnxruntimeVersion(): string {
  return ort.env.versions.node ?? ort.env.versions.common ?? 'unknown';
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

export function makeTensor(type: string, data: ort.Tensor['data'], dims: readonly number[]): OrtTensor {
  return new ort.Tensor(type as 'float32', data as Float32Array, dims);
}
