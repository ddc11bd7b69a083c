import { FleetError } from '../../shared/errors/index.js';

/**
 * Parses a numeric CLI option (commander hands over strings). An absent option stays
 * undefined; anything that is not a finite number at least `min` is INPUT_INVALID naming the flag.
 */
export function numberOption(value: string, flag: string, min?: number): number;
export function numberOption(value: string | undefined, flag: string, min?: number): number | undefined;
export function numberOption(
  value: string | undefined,
  flag: string,
  min = Number.NEGATIVE_INFINITY,
): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n < min) {
    const bound = min === Number.NEGATIVE_INFINITY ? 'a number' : `a number >= ${min}`;
    throw new FleetError('INPUT_INVALID', `${flag} must be ${bound}, got '${value}'`);
  }
  return n;
}
