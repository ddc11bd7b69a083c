import type { ErrorCode } from './catalog.js';

/**
 * The HTTP status each coded error answers with, in one table. Typed over every code, so a new
 * code in the catalog does not compile until it has a status here (no silent 500s).
 * 4xx: the caller can fix the request; 5xx: the service could not do its part.
 */
export const HTTP_STATUS_BY_CODE: Record<ErrorCode, number> = {
  CONFIG_INVALID: 400,
  INPUT_INVALID: 400,
  FILE_NOT_FOUND: 404,
  NPY_INVALID: 400,
  MSG_NOT_JSON: 400,
  MSG_SCHEMA: 400,
  MSG_TOO_LARGE: 413,
  MSG_TOPIC: 400,
  MSG_VERSION: 400,
  ONNX_DECODE: 400,
  ONNX_INVALID: 400,
  ONNX_UNSUPPORTED_OP: 422,
  ONNX_EXTERNAL_DATA: 400,
  ONNX_SHAPE: 400,
  RUNTIME_LOAD: 422,
  RUNTIME_RUN: 422,
  RUNTIME_TIMEOUT: 422,
  SERVE_DATATYPE: 400,
  SERVE_BODY_TOO_LARGE: 413,
  SERVE_NOT_READY: 503,
  TRANSFER_HASH: 502,
  TRANSFER_TRUNCATED: 502,
  TRANSFER_TIMEOUT: 504,
  TRANSFER_NO_SPACE: 507,
  ARTIFACT_NOT_FOUND: 404,
  ENROLL_TIMEOUT: 504,
  MANIFEST_SIGNATURE: 400,
  MANIFEST_EXPIRED: 400,
  MANIFEST_ROLLBACK: 409,
  GOLDEN_MISMATCH: 422,
  TELEMETRY_DROPPED: 503,
  NOT_FOUND: 404,
  CONFLICT: 409,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  RATE_LIMITED: 429,
  ENROLL_TOKEN: 403,
  INGEST_OVERLOADED: 503,
  INGEST_FAILED: 503,
  QUANT_FAILED: 422,
  CALIBRATION_DATA: 400,
  TRAIN_FAILED: 422,
  GRAD_UNSUPPORTED_OP: 422,
  INTERNAL: 500,
};

/** The HTTP status for a coded error. */
export function httpStatusOf(code: ErrorCode): number {
  return HTTP_STATUS_BY_CODE[code];
}
