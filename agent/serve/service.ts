import { dirname, join } from 'node:path';
import { type FleetError, toFleetError } from '../../shared/errors/index.js';
import type { Logger } from '../../shared/logger.js';
import { type ExecutionProvider, type Manifest, manifestSchema } from '../../shared/protocol/index.js';
import type { SessionProfile } from '../runtime/ort.js';
import { readJsonFile } from '../store/files.js';
import { type BatchingConfig, policyFor } from './batch-policy.js';
import { BatchingExecutor } from './batcher.js';
import { DirectExecutor, type Executor } from './executor.js';
import { ModelRegistry } from './registry.js';
import { InferenceServer, type InferenceServerOptions } from './server.js';
import { StablePaths } from './stable-path.js';
import { TrafficRecorder } from './traffic.js';

export interface InferenceServiceOptions {
  dataDir: string;
  ep: ExecutionProvider;
  profile: Omit<SessionProfile, 'ep'>;
  dynamicDim: number;
  logger: Logger;
  /** Listener settings (host, port, socket, token, body limit). */
  http: Omit<InferenceServerOptions, 'registry' | 'executor' | 'traffic' | 'logger'>;
  /** Command run after each activation ('' = none). */
  hookCommand: string;
  /** Dynamic batching per model name ('*' = every model); default {} = off. */
  batching?: BatchingConfig;
  /** Builds the executor; default: a batcher when `batching` names a model, else one run per request. */
  executor?: (registry: ModelRegistry) => Executor;
}

/**
 * Everything the agent does to hand its models to applications on the device: the inference
 * server (Open Inference Protocol v2), hot swap on activation, the stable file path with
 * models.json and the activation hook, and the per-release traffic sketches for telemetry.
 */
export class InferenceService {
  readonly registry: ModelRegistry;
  readonly traffic = new TrafficRecorder();
  readonly paths: StablePaths;
  readonly server: InferenceServer;
  private readonly log: Logger;

  constructor(private readonly o: InferenceServiceOptions) {
    this.log = o.logger.child({ component: 'serve' });
    this.registry = new ModelRegistry({
      ep: o.ep,
      profile: o.profile,
      dynamicDim: o.dynamicDim,
      logger: this.log,
    });
    this.paths = new StablePaths({ dataDir: o.dataDir, hookCommand: o.hookCommand, logger: this.log });
    this.server = new InferenceServer({
      ...o.http,
      registry: this.registry,
      executor: o.executor ? o.executor(this.registry) : this.defaultExecutor(),
      traffic: this.traffic,
      logger: this.log,
    });
  }

  private defaultExecutor(): Executor {
    const batching = this.o.batching ?? {};
    if (Object.keys(batching).length === 0) return new DirectExecutor();
    return new BatchingExecutor({ policy: (model) => policyFor(batching, model), logger: this.log });
  }

  get url(): string | null {
    return this.server.url;
  }

  /**
   * Starts listening. A taken port or socket is not fatal: delivery and telemetry go on without
   * serving; the coded error (SERVE_ADDRESS_IN_USE, ...) is logged and returned for the caller
   * to report.
   */
  async start(): Promise<FleetError | null> {
    try {
      await this.server.start();
      this.log.info(
        {
          url: this.server.url,
          socket: this.o.http.socketPath || null,
          tokenRequired: Boolean(this.o.http.token),
          maxBodyBytes: this.o.http.maxBodyBytes,
          batching: this.o.batching ?? {},
        },
        'inference service listening',
      );
      return null;
    } catch (error) {
      const e = toFleetError(error, 'INTERNAL');
      this.log.error({ code: e.code, err: e.message }, `inference service not serving: ${e.message}`);
      return e;
    }
  }

  /**
   * A release became active in `slotPath` (after its checks and benchmark passed): serve it
   * (hot swap) and switch the stable path. Failures are logged; the previous release keeps serving.
   */
  async activate(manifest: Manifest, slotPath: string): Promise<void> {
    const entry = {
      name: manifest.name,
      // A release is one artifact: the cloud's model id (manifest.version only counts re-issues
      // of the same artifact's manifest).
      version: manifest.modelId,
      modelId: manifest.modelId,
      sha256: manifest.sha256,
    };
    try {
      await this.registry.load({ ...entry, model: slotPath, servingShapes: manifest.servingShapes });
    } catch (error) {
      this.log.error(
        { err: (error as Error).message, model: entry.name },
        'cannot serve the activated release',
      );
    }
    try {
      await this.paths.publish(entry, slotPath);
    } catch (error) {
      this.log.error({ err: (error as Error).message, model: entry.name }, 'cannot switch the stable path');
    }
  }

  /** On start: serve what state.json names active (its slot's manifest.json gives the name). */
  async restore(slotPath: string | null): Promise<void> {
    if (!slotPath) return;
    const parsed = manifestSchema.safeParse(
      await readJsonFile(join(dirname(slotPath), 'manifest.json')).catch(() => null),
    );
    if (!parsed.success) {
      this.log.warn({ slotPath }, 'active slot has no readable manifest.json; not serving it');
      return;
    }
    await this.activate(parsed.data, slotPath);
  }

  async stop(): Promise<void> {
    await this.server.stop();
    await this.registry.close();
  }
}
