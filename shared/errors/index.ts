export { ERROR_CATALOG, type ErrorCode, isRetryableCode } from './catalog.js';
export { FleetError, isFleetError, toFleetError } from './fleet-error.js';
export { HTTP_STATUS_BY_CODE, httpStatusOf } from './http-status.js';
