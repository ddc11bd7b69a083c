// The compression engine's one door to the fleet controller. The engine is an offline compiler
// that knows nothing of fleets; the controller may use only what is exported here (enforced by
// test/unit/architecture.test.ts). Compression itself runs in a child process (`fleetml compress`),
// so the controller needs the report's type, not the pipeline.
export { parseNpy } from './data/npy.js';
export { describeOnnx, type TensorSpec } from './describe.js';
export type { CompressionReport, VariantReport } from './pipeline/report.js';
export { CHOOSABLE_VARIANTS } from './pipeline/variant-names.js';
export { recommendVariant } from './profiles/planner.js';
export { ProfileRegistry } from './profiles/registry.js';
export type { DeviceProfile } from './profiles/types.js';
export { checkModelLoads } from './runtime/load-check.js';
