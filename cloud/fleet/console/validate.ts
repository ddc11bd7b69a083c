import type { z } from 'zod';
import { FleetError } from '../../../shared/errors/index.js';

/** Validates an HTTP body/query with a shared schema; INPUT_INVALID naming the first bad field. */
export function parseInput<T extends z.ZodType>(schema: T, value: unknown): z.infer<T> {
  const result = schema.safeParse(value);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new FleetError('INPUT_INVALID', `${issue.path.join('.') || 'body'}: ${issue.message}`);
  }
  return result.data;
}

/** Parses a window such as '15m', '24h' or '7d' into milliseconds. */
export function parseWindow(text: string | undefined, fallbackMs: number): number {
  if (!text) return fallbackMs;
  const match = /^(\d+)(s|m|h|d)$/.exec(text);
  if (!match) throw new FleetError('INPUT_INVALID', `window must look like 15m, 24h or 7d, got ${text}`);
  const unit = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] as 's' | 'm' | 'h' | 'd'];
  return Number(match[1]) * unit;
}
