import { readFile } from 'node:fs/promises';
import {
  DirectExecutor,
  type Executor,
  InferenceServer,
  type InferenceServerOptions,
  ModelRegistry,
  TrafficRecorder,
} from '../../../../agent/serve/index.js';
import { createLogger } from '../../../../shared/logger.js';

export const SAMPLE = new URL('../../../../cloud/samples/mnist-mlp.onnx', import.meta.url).pathname;

export interface Served {
  registry: ModelRegistry;
  traffic: TrafficRecorder;
  server: InferenceServer;
  url: string;
  stop(): Promise<void>;
}

/** A real registry serving the sample MNIST model as `mnist-mlp` version '1', and a real server. */
export async function serveSample(
  options: Partial<InferenceServerOptions> = {},
  executor: (r: ModelRegistry) => Executor = () => new DirectExecutor(),
): Promise<Served> {
  const logger = createLogger({ name: 'test', level: 'silent' });
  const registry = new ModelRegistry({ ep: 'cpu', profile: { intraOpThreads: 1 }, logger });
  await registry.load({ name: 'mnist-mlp', version: '1', model: SAMPLE });
  const traffic = new TrafficRecorder();
  const server = new InferenceServer({
    registry,
    executor: executor(registry),
    traffic,
    logger,
    port: 0,
    ...options,
  });
  await server.start();
  return {
    registry,
    traffic,
    server,
    url: server.url ?? '',
    async stop() {
      await server.stop();
      await registry.close();
    },
  };
}

export function sampleBytes(): Promise<Buffer> {
  return readFile(SAMPLE);
}

/** A digit-like input: deterministic pseudo-random pixels in [0, 1). */
export function digit(seed = 1): number[] {
  let s = seed;
  return Array.from({ length: 784 }, () => {
    s = (s * 1_103_515_245 + 12_345) % 2_147_483_648;
    return s / 2_147_483_648;
  });
}

export function inferBody(data: unknown = digit(), shape = [1, 1, 28, 28], datatype = 'FP32') {
  return JSON.stringify({ inputs: [{ name: 'input', shape, datatype, data }] });
}

/** Splits a binary-extension response into its JSON header and the bytes after it. */
export async function readBinaryResponse(res: Response): Promise<{ header: any; rest: Buffer }> {
  const body = Buffer.from(await res.arrayBuffer());
  const length = Number(res.headers.get('inference-header-content-length'));
  return { header: JSON.parse(body.subarray(0, length).toString()), rest: body.subarray(length) };
}
