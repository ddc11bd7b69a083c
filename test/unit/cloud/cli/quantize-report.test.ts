import { describe, expect, it } from 'vitest';
import { floatOpsPhrase } from '../../../../cloud/cli/quantize-report.js';

describe('quantize summary line', () => {
  it('names the ops left in float, and says nothing when none were', () => {
    expect(floatOpsPhrase({ Conv: 1, Mul: 2 })).toBe(', float: {"Conv":1,"Mul":2}');
    expect(floatOpsPhrase({})).toBe('');
    expect(floatOpsPhrase(undefined)).toBe('');
  });
});
