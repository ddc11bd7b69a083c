import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteLeaseLeadership } from '../../../cloud/fleet/leader/sqlite-lease.js';
import { openDatabase } from '../../../cloud/fleet/store/db.js';
import { waitFor } from '../../faults/procs.js';

// Two replicas' connections to one SQLite file, as two cloud processes on one host have.
describe('SQLite leader lease', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetml-lease-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('has one holder, and a holder that stops renewing (a crash) is replaced after the TTL', async () => {
    const path = join(dir, 'fleetml.db');
    const dbA = openDatabase({ path });
    const dbB = openDatabase({ path });
    const a = new SqliteLeaseLeadership(dbA, { ttlMs: 1500, renewMs: 200 });
    const b = new SqliteLeaseLeadership(dbB, { ttlMs: 1500, renewMs: 200 });
    await a.start();
    await b.start();
    try {
      expect(a.isLeader).toBe(true);
      expect(b.isLeader).toBe(false);
      await new Promise((r) => setTimeout(r, 1000)); // several renewals: still A
      expect(b.isLeader).toBe(false);
      // A's process "dies": its connection is gone, no release, no more renewals.
      dbA.close();
      const t0 = Date.now();
      await waitFor('B to take the expired lease', () => b.isLeader, 10_000);
      expect(Date.now() - t0).toBeGreaterThan(300); // not before A's lease ran out
      expect(a.isLeader).toBe(false); // A steps down when it cannot renew
    } finally {
      await a.stop();
      await b.stop();
      dbB.close();
    }
  });
});
