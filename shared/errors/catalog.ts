/**
 * The one catalog of coded errors. Every error fleetml raises on purpose carries one of these
 * codes; callers decide on retries by `retryable`, never by message text.
 * Add new codes here (grouped by area, prefix = area), keep existing codes stable.
 */
export const ERROR_CATALOG = {
  // configuration and input
  CONFIG_INVALID: { retryable: false, summary: 'configuration failed validation' },
  INPUT_INVALID: { retryable: false, summary: 'an argument or request body failed validation' },
  FILE_NOT_FOUND: { retryable: false, summary: 'a file named by the user does not exist' },
  NPY_INVALID: { retryable: false, summary: 'a .npy file is malformed or of an unsupported dtype' },
  // protocol / MQTT
  MSG_NOT_JSON: { retryable: false, summary: 'an MQTT payload is not valid JSON' },
  MSG_SCHEMA: { retryable: false, summary: 'an MQTT payload does not match its schema' },
  MSG_TOO_LARGE: { retryable: false, summary: 'an MQTT payload exceeds the size limit' },
  MSG_TOPIC: { retryable: false, summary: 'a message arrived on a topic that is not part of the protocol' },
  MSG_VERSION: { retryable: false, summary: 'unsupported protocol version' },
  // ONNX
  ONNX_DECODE: { retryable: false, summary: 'the file is not a valid ONNX protobuf' },
  ONNX_INVALID: { retryable: false, summary: 'the ONNX graph is structurally invalid' },
  ONNX_UNSUPPORTED_OP: { retryable: false, summary: 'an operator is not supported by this pass' },
  ONNX_EXTERNAL_DATA: { retryable: false, summary: 'external tensor data is missing or out of range' },
  ONNX_SHAPE: { retryable: false, summary: 'input shape does not match the model' },
  // runtime on device
  RUNTIME_LOAD: { retryable: false, summary: 'onnxruntime could not load the model' },
  RUNTIME_RUN: { retryable: false, summary: 'onnxruntime failed while running the model' },
  // Not retried: a model that hangs onnxruntime hangs it again; the limit is generous (see
  // agent modelCheckTimeoutMs), so a timeout means the model, not a busy moment.
  RUNTIME_TIMEOUT: { retryable: false, summary: 'loading or running the model took too long' },
  // local inference service (agent/serve)
  SERVE_DATATYPE: {
    retryable: false,
    summary: 'an inference input has the wrong datatype or a value outside it',
  },
  SERVE_BODY_TOO_LARGE: { retryable: false, summary: 'an inference request body exceeds the size limit' },
  SERVE_NOT_READY: { retryable: true, summary: 'the model is not loaded yet (or no longer served)' },
  SERVE_ADDRESS_IN_USE: {
    retryable: true,
    summary: 'the inference service port or socket is taken by another program',
  },
  SERVE_LISTEN: { retryable: false, summary: 'the inference service cannot listen on its address' },
  PLATFORM_UNSUPPORTED: {
    retryable: false,
    summary: 'this operating system or CPU architecture cannot run the agent (e.g. 32-bit ARM)',
  },
  // delivery
  TRANSFER_HASH: { retryable: true, summary: 'a block or artifact failed its hash check' },
  TRANSFER_TRUNCATED: { retryable: true, summary: 'an artifact transfer ended short' },
  TRANSFER_TIMEOUT: { retryable: true, summary: 'no progress on a transfer within the timeout' },
  TRANSFER_NO_SPACE: { retryable: false, summary: 'not enough disk space for the artifact' },
  ARTIFACT_NOT_FOUND: { retryable: false, summary: 'the requested artifact is not in the store' },
  ENROLL_TIMEOUT: { retryable: true, summary: 'no enrollment reply from the cloud before the deadline' },
  MANIFEST_SIGNATURE: { retryable: false, summary: 'manifest signature is invalid or from the wrong key' },
  MANIFEST_EXPIRED: { retryable: false, summary: 'manifest has expired' },
  MANIFEST_ROLLBACK: { retryable: false, summary: 'manifest version is lower than the installed one' },
  GOLDEN_MISMATCH: { retryable: false, summary: 'model outputs differ from the golden outputs' },
  MANIFEST_INVALID: {
    retryable: false,
    summary: 'a manifest or target does not fit the protocol schema (e.g. over 16 dimensions, a long name)',
  },
  TARGET_SIGNATURE: {
    retryable: false,
    summary: 'a target state is unsigned, not signed by the fleet key, or for another device',
  },
  ENROLL_KEY: {
    retryable: false,
    summary: 'the enrollment reply carries no fleet key, or not the one pinned out of band',
  },
  // telemetry
  TELEMETRY_DROPPED: {
    retryable: false,
    summary: 'the on-device telemetry outbox was full; its oldest records were dropped',
  },
  // cloud
  NOT_FOUND: { retryable: false, summary: 'the requested entity does not exist' },
  CONFLICT: { retryable: false, summary: 'the request conflicts with the current state' },
  UNAUTHORIZED: { retryable: false, summary: 'missing or invalid credentials' },
  FORBIDDEN: { retryable: false, summary: 'the credentials do not allow this action' },
  RATE_LIMITED: { retryable: true, summary: 'too many requests or failed sign-ins; wait and retry' },
  ENROLL_TOKEN: { retryable: false, summary: 'the enrollment token is unknown, used up, revoked or expired' },
  DEVICE_REVOKED: { retryable: false, summary: 'the device is revoked: nothing can be deployed to it' },
  UPLOAD_TOO_LARGE: { retryable: false, summary: 'an upload is larger than the configured limit' },
  // telemetry ingest
  INGEST_OVERLOADED: {
    retryable: true,
    summary: 'the ingest queue is full; the batch is not acknowledged and the agent sends it again',
  },
  INGEST_FAILED: { retryable: true, summary: 'storing a telemetry batch failed; it was not acknowledged' },
  BROKER_UNAVAILABLE: {
    retryable: true,
    summary:
      "the MQTT broker did not take an enrolled device's credentials (no answer, or an error); the device asks again",
  },
  STORE_UNAVAILABLE: {
    retryable: true,
    summary:
      'the fleet database could not be reached (a restart, a cut connection) or had no free connection in time',
  },
  // compression
  QUANT_FAILED: { retryable: false, summary: 'quantization could not complete' },
  ALREADY_QUANTIZED: {
    retryable: false,
    summary: 'the model is already quantized; quantizing it again only adds ops',
  },
  CALIBRATION_DATA: { retryable: false, summary: 'calibration data does not fit the model' },
  TRAIN_FAILED: { retryable: false, summary: 'training could not complete' },
  GRAD_UNSUPPORTED_OP: { retryable: false, summary: 'no gradient rule for an operator' },
  INTERNAL: { retryable: false, summary: 'an unexpected internal error' },
} as const satisfies Record<string, { retryable: boolean; summary: string }>;

export type ErrorCode = keyof typeof ERROR_CATALOG;

/**
 * Whether a code that came from elsewhere (the error of a reply over MQTT) is a known code worth
 * asking again for. Unknown codes (a newer peer) are not: giving up is the safe default.
 */
export function isRetryableCode(code: string): boolean {
  return Object.hasOwn(ERROR_CATALOG, code) && ERROR_CATALOG[code as ErrorCode].retryable;
}
