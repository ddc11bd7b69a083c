export { ERROR_CATALOG, type ErrorCode } from './catalog.js';
export { FleetError, isFleetError, toFleetError } from './fleet-error.js';
