import { ERROR_CATALOG, type ErrorCode } from './catalog.js';

/** An error with a stable code from the catalog and optional structured details. */
export class FleetError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>, options?: ErrorOptions) {
    super(message, options);
    this.name = 'FleetError';
    this.code = code;
    this.details = details;
  }

  get retryable(): boolean {
    return ERROR_CATALOG[this.code].retryable;
  }

  toJSON(): { code: ErrorCode; message: string; details?: Record<string, unknown> } {
    return this.details
      ? { code: this.code, message: this.message, details: this.details }
      : { code: this.code, message: this.message };
  }
}

export function isFleetError(value: unknown, code?: ErrorCode): value is FleetError {
  return value instanceof FleetError && (code === undefined || value.code === code);
}

/** Wraps any thrown value into a FleetError, keeping FleetErrors as they are. */
export function toFleetError(value: unknown, fallback: ErrorCode = 'INTERNAL'): FleetError {
  if (value instanceof FleetError) return value;
  const message = value instanceof Error ? value.message : String(value);
  return new FleetError(fallback, message, undefined, { cause: value });
}
