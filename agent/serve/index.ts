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
