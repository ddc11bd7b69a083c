import { performance } from 'node:perf_hooks';
import type { Logger } from '../../shared/logger.js';
import type { ExecutionProvider, ServingShapes } from '../../shared/protocol/index.js';
import { randomFeeds } from '../bench/benchmark.js';
import {
  createSession,
  inputInfo,
  type OrtSession,
  outputInfo,
  type SessionProfile,
  type TensorInfo,
} from '../runtime/ort.js';
import { datatypeOfOrt } from './datatypes.js';
import { describeOutputs, runDims } from './output-shapes.js';
import type { TensorSpec } from './tensors.js';

/** One loaded release of a model: its session and the requests still running on it. */
export interface Release {
  name: string;
  version: string;
  modelId: string | null;
  sha256: string | null;
  session: OrtSession;
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  /** Requests that acquired this release and have not finished. */
  inFlight: number;
  /** Replaced by a newer release: the session is released when the last request finishes. */
  retired: boolean;
  /** performance.now() when it became live (NaN before). */
  liveSince: number;
}

export interface ReleaseSource {
  name: string;
  version: string;
  modelId?: string | null;
  sha256?: string | null;
  /** Model file (an A/B slot) or bytes. */
  model: string | Uint8Array;
  /** The shape each input is served at (signed manifest's servingShapes): metadata and warm-up. */
  servingShapes?: ServingShapes;
}

export interface ModelRegistryOptions {
  ep: ExecutionProvider;
  profile: Omit<SessionProfile, 'ep'>;
  /** Value for symbolic dims the serving shapes leave open, in the warm-up run. Default 1. */
  dynamicDim?: number;
  logger: Logger;
}

function toSpec(info: TensorInfo, servingShapes: ServingShapes = {}): TensorSpec | null {
  const type = datatypeOfOrt(info.type);
  if (!type) return null;
  const shape = info.shape.map((d) => (typeof d === 'number' && d > 0 ? d : -1));
  const serving = servingShapes[info.name];
  // The serving shape fills the model's symbolic dims in the metadata (the cloud checked it
  // against the model at upload); without one they stay -1. Requests may still vary them.
  const described =
    serving && serving.length === shape.length ? shape.map((d, i) => (d > 0 ? d : serving[i])) : shape;
  return { name: info.name, type, shape, described };
}

function specsOf(
  infos: TensorInfo[],
  servingShapes?: ServingShapes,
): { info: TensorInfo; spec: TensorSpec }[] {
  return infos.flatMap((info) => {
    const spec = toSpec(info, servingShapes);
    return spec ? [{ info, spec }] : [];
  });
}

/**
 * The models the inference service serves, by name, each with its live release. Hot swap: a new
 * release is loaded and warmed up beside the old one, then becomes live in one synchronous step;
 * requests hold the release they started on until they finish, and the old session is released
 * only after its last request. Nothing that fails while loading touches the live release.
 */
export class ModelRegistry {
  private readonly live = new Map<string, Release>();
  private readonly loading = new Map<string, number>();
  private sequence = 0;

  constructor(private readonly o: ModelRegistryOptions) {}

  get(name: string): Release | undefined {
    return this.live.get(name);
  }

  names(): string[] {
    return [...this.live.keys()];
  }

  /** True while some model is being loaded and none of its releases is live yet. */
  isLoading(): boolean {
    for (const name of this.loading.keys()) if (!this.live.has(name)) return true;
    return false;
  }

  /** Takes the live release of `name` for one request; pair with `done`. */
  acquire(name: string): Release | undefined {
    const r = this.live.get(name);
    if (r) r.inFlight++;
    return r;
  }

  done(r: Release): void {
    r.inFlight--;
    if (r.retired && r.inFlight === 0) this.releaseSession(r);
  }

  /**
   * Loads a release and makes it live (replacing the model's live release). A later `load` of
   * the same name that finishes first wins; the slower, older one is dropped.
   */
  async load(source: ReleaseSource): Promise<Release> {
    const ticket = ++this.sequence;
    this.loading.set(source.name, ticket);
    const t0 = performance.now();
    let session: OrtSession;
    try {
      session = await createSession(source.model, { ...this.o.profile, ep: this.o.ep });
    } finally {
      if (this.loading.get(source.name) === ticket) this.loading.delete(source.name);
    }
    // One run before going live: lazy kernel setup is paid here, not by the first request.
    const dynamicDim = this.o.dynamicDim ?? 1;
    const warmUp = await runDims(session, () =>
      randomFeeds(session, { dynamicDim, servingShapes: source.servingShapes }),
    );
    if (!warmUp) this.o.logger.debug({ model: source.name }, 'warm-up run skipped');
    const inputs = specsOf(inputInfo(session), source.servingShapes);
    const outputs = await describeOutputs(session, inputs, specsOf(outputInfo(session)), {
      warmUp,
      servingShapes: source.servingShapes,
      dynamicDim,
    });
    const release: Release = {
      name: source.name,
      version: source.version,
      modelId: source.modelId ?? null,
      sha256: source.sha256 ?? null,
      session,
      inputs: inputs.map((i) => i.spec),
      outputs,
      inFlight: 0,
      retired: false,
      liveSince: Number.NaN,
    };
    const current = this.live.get(source.name);
    if (current && this.newerThan(current, ticket)) {
      this.releaseSession(release);
      return current;
    }
    this.tickets.set(release, ticket);
    release.liveSince = performance.now();
    this.live.set(source.name, release);
    if (current) this.retire(current);
    this.o.logger.info(
      { model: source.name, version: source.version, loadMs: Math.round(performance.now() - t0) },
      'serving release',
    );
    return release;
  }

  /** Stops serving `name`; requests in flight finish on its session. */
  unload(name: string): void {
    const r = this.live.get(name);
    if (!r) return;
    this.live.delete(name);
    this.retire(r);
  }

  async close(): Promise<void> {
    for (const name of this.names()) this.unload(name);
  }

  private readonly tickets = new WeakMap<Release, number>();

  private newerThan(r: Release, ticket: number): boolean {
    return (this.tickets.get(r) ?? 0) > ticket;
  }

  private retire(r: Release): void {
    r.retired = true;
    if (r.inFlight === 0) this.releaseSession(r);
  }

  private releaseSession(r: Release): void {
    r.session.release().catch((error) => {
      this.o.logger.warn({ err: (error as Error).message, model: r.name }, 'releasing a session failed');
    });
  }
}
