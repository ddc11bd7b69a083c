/**
 * TensorRT settings for onnxruntime's TensorRT execution provider. onnxruntime-node appends the
 * provider with a device id only, so the provider reads its settings from ORT_TENSORRT_*
 * environment variables (onnxruntime's tensorrt_env_vars), when the session is created. They
 * are set in the agent's own environment before each TensorRT session and passed to the model
 * check's child, so that the engine built by the first session (the model check) lands in one
 * cache that the install session and the latency probe load instead of building it again.
 */
export interface TensorRtSettings {
  /** Engines, one per model and GPU (onnxruntime names the files). */
  engineCacheDir: string;
  /** TensorRT's timing cache, shared by every model. */
  timingCacheDir: string;
}

export type Precision = 'fp32' | 'fp16' | 'int8';

/** The variant names the cloud ships (fp32, fp16, int8, student-int8, ...) as a TensorRT precision. */
export function precisionOfVariant(variant: string | undefined): Precision {
  if (!variant) return 'fp32';
  if (/int8/.test(variant)) return 'int8';
  if (/fp16/.test(variant)) return 'fp16';
  return 'fp32';
}

/**
 * The environment for one TensorRT session. FP16 is allowed for FP16 and INT8 variants (layers
 * TensorRT cannot run in INT8 fall back to FP16, not FP32); INT8 only for INT8 (QDQ) variants,
 * which carry their own scales, so no calibration table is involved. An FP32 variant gets neither,
 * so that its outputs stay within the golden set's tolerance.
 */
export function tensorRtEnvironment(
  settings: TensorRtSettings,
  precision: Precision,
): Record<string, string> {
  return {
    ORT_TENSORRT_ENGINE_CACHE_ENABLE: '1',
    ORT_TENSORRT_CACHE_PATH: settings.engineCacheDir,
    ORT_TENSORRT_TIMING_CACHE_ENABLE: '1',
    ORT_TENSORRT_GLOBAL_CACHE_PATH: settings.timingCacheDir,
    ORT_TENSORRT_FP16_ENABLE: precision === 'fp32' ? '0' : '1',
    ORT_TENSORRT_INT8_ENABLE: precision === 'int8' ? '1' : '0',
  };
}
