import { describe, expect, it } from 'vitest';
import { DEFAULT_POOL, parseDatabaseUrl } from '../../../../../cloud/fleet/store/postgres.js';

// The pool's size and wait come from the --database URL (docs/scale.md); `pg` gets the URL
// without them. A real pool on these settings: test/integration/scale/pg-pool.test.ts.
describe('database URL pool settings', () => {
  it('defaults to the built-in pool and leaves a URL without them untouched', () => {
    const url = 'postgres://fleetml:p%40ss@db:5432/fleetml?sslmode=require';
    expect(parseDatabaseUrl(url)).toEqual({ connectionString: url, pool: DEFAULT_POOL });
  });

  it('reads pool_max and pool_wait_ms and hands pg the URL without them', () => {
    const { connectionString, pool } = parseDatabaseUrl(
      'postgresql://fleetml:secret@db/fleetml?pool_max=32&sslmode=require&pool_wait_ms=30000',
    );
    expect(pool).toEqual({ max: 32, waitMs: 30_000 });
    const passed = new URL(connectionString);
    expect([...passed.searchParams.keys()]).toEqual(['sslmode']);
    expect(passed.password).toBe('secret');
    expect(passed.pathname).toBe('/fleetml');
  });

  it('refuses values that are not a sensible pool (CONFIG_INVALID, password not shown)', () => {
    for (const query of [
      'pool_max=0',
      'pool_max=many',
      'pool_max=2.5',
      'pool_wait_ms=-1',
      'pool_max=100000',
    ]) {
      let error: any;
      try {
        parseDatabaseUrl(`postgres://fleetml:secret@db/fleetml?${query}`);
      } catch (e) {
        error = e;
      }
      expect(error?.code, query).toBe('CONFIG_INVALID');
      expect(error.message, query).not.toContain('secret');
    }
    expect(() => parseDatabaseUrl('mysql://db/fleetml')).toThrow(/not a postgres/);
  });
});
