export {
  type BatchingConfig,
  type BatchPolicy,
  DEFAULT_MAX_QUEUE_DELAY_MS,
  parseBatching,
  policyFor,
} from './batch-policy.js';
export {
  BatchingExecutor,
  type BatchingExecutorOptions,
  type BatchTimers,
  hasBatchDimension,
} from './batcher.js';
export { DirectExecutor, type Executor } from './executor.js';
export { ModelRegistry, type ModelRegistryOptions, type Release, type ReleaseSource } from './registry.js';
export {
  INFERENCE_SERVER_DEFAULTS,
  InferenceServer,
  type InferenceServerOptions,
  isLoopback,
} from './server.js';
export { InferenceService, type InferenceServiceOptions } from './service.js';
export { modelDirName, StablePaths } from './stable-path.js';
export { TrafficRecorder } from './traffic.js';
