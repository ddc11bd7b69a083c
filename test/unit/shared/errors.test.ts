import { describe, expect, it } from 'vitest';
import {
  ERROR_CATALOG,
  HTTP_STATUS_BY_CODE,
  httpStatusOf,
  isRetryableCode,
} from '../../../shared/errors/index.js';

describe('error code to HTTP status', () => {
  it('has a status for every code in the catalog, and nothing else', () => {
    expect(Object.keys(HTTP_STATUS_BY_CODE).sort()).toEqual(Object.keys(ERROR_CATALOG).sort());
    for (const status of Object.values(HTTP_STATUS_BY_CODE)) {
      expect(status).toBeGreaterThanOrEqual(400);
      expect(status).toBeLessThan(600);
    }
  });

  it('answers errors the caller caused with 4xx and only an internal error with 500', () => {
    // Both used to fall through to 500.
    expect(httpStatusOf('MANIFEST_EXPIRED')).toBe(400);
    expect(httpStatusOf('CALIBRATION_DATA')).toBe(400);
    expect(httpStatusOf('INTERNAL')).toBe(500);
    const fiveHundreds = Object.entries(HTTP_STATUS_BY_CODE).filter(([, s]) => s === 500);
    expect(fiveHundreds.map(([code]) => code)).toEqual(['INTERNAL']);
  });
});

describe('codes received from a peer', () => {
  it('are retryable only when the catalog says so; unknown codes are not', () => {
    expect(isRetryableCode('STORE_UNAVAILABLE')).toBe(true);
    expect(isRetryableCode('ENROLL_TOKEN')).toBe(false);
    expect(isRetryableCode('INTERNAL')).toBe(false);
    for (const unknown of ['SOMETHING_NEWER', 'toString', '__proto__', ''])
      expect(isRetryableCode(unknown)).toBe(false);
  });
});
