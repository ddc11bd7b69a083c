import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PgJobStore } from '../../../cloud/fleet/jobs/pg-jobs.js';
import { openPostgres, type PgPool } from '../../../cloud/fleet/store/postgres.js';
import { waitFor } from '../../faults/procs.js';
import { freshDatabase, postgresUnavailable } from './pg.js';

const skipReason = await postgresUnavailable();
const params = { model: 'm-1', profile: 'rpi4', data: 'mnist' };

// The compression job queue on a real PostgreSQL, with two stores standing for two replicas.
describe.skipIf(skipReason !== null)(
  `PostgreSQL compression job queue ${skipReason ? `(skipped: ${skipReason})` : ''}`,
  () => {
    let db: Awaited<ReturnType<typeof freshDatabase>>;
    let pool: PgPool;
    const stores: PgJobStore[] = [];
    const replica = (name: string, maxAttempts = 3) => {
      const store = new PgJobStore(pool, db.url, name, { maxAttempts });
      stores.push(store);
      return store;
    };
    /** Ends a store's lock session from the server side, as when its replica is killed. */
    const killSession = async (name: string) => {
      await pool.query(
        `SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted
           AND pid IN (SELECT pid FROM pg_stat_activity WHERE application_name = $1)`,
        [`fleetml-jobs ${name}`],
      );
    };

    beforeAll(async () => {
      db = await freshDatabase();
      pool = await openPostgres(db.url);
    });
    afterAll(async () => {
      for (const s of stores) await s.close();
      await pool?.end();
      await db?.drop();
    });

    it('gives each queued job to one replica only, oldest first', async () => {
      const a = replica('a');
      const b = replica('b');
      await a.insert({ id: 'j-1', params, createdBy: 't', status: 'queued' });
      await a.insert({ id: 'j-2', params, createdBy: 't', status: 'queued' });
      const claims = await Promise.all([a.claim(), b.claim(), a.claim(), b.claim()]);
      const ids = claims.filter((c) => c !== null).map((c) => c!.job.id);
      expect(ids.sort()).toEqual(['j-1', 'j-2']);
      expect(claims.filter((c) => c === null)).toHaveLength(2);
      // Both are alive: nothing is an orphan.
      expect(await a.recoverOrphans()).toEqual([]);
      for (const c of claims) if (c) await (c.job.runner === 'a' ? a : b).release(c, false);
      await pool.query(`UPDATE compression_jobs SET status = 'succeeded'`);
    });

    it('queues a running job again when its replica’s session ends, and ignores the dead run’s updates', async () => {
      const a = replica('c');
      const b = replica('d');
      let lost = 0;
      a.onLost(() => lost++);
      await a.insert({ id: 'j-3', params, createdBy: 't', status: 'queued' });
      const first = (await a.claim())!;
      expect(first.job).toMatchObject({ id: 'j-3', status: 'running', runner: 'c', attempts: 1 });
      expect(await a.update('j-3', { progress: 0.5, stage: 'int8' }, first)).toBe(true);
      await killSession('c');
      await waitFor('a to notice its lock session ended', () => lost === 1, 10_000);
      expect(await b.recoverOrphans()).toEqual(['j-3']);
      const job = await b.get('j-3');
      expect(job).toMatchObject({ status: 'queued', attempts: 1 });
      expect(job?.stage).toContain('replica c died');
      const second = (await b.claim())!;
      expect(second).toMatchObject({ attempt: 2, job: { runner: 'd', progress: 0 } });
      // The first run lives on somewhere: none of its writes land any more.
      expect(await a.update('j-3', { status: 'succeeded' }, first)).toBe(false);
      expect(await a.stillOwned([first])).toEqual(new Set());
      expect(await b.stillOwned([second])).toEqual(new Set(['j-3']));
      expect(await b.update('j-3', { status: 'succeeded', progress: 1 }, second)).toBe(true);
      await b.release(second, false);
      expect((await a.get('j-3'))?.status).toBe('succeeded');
    });

    it('fails a job whose replicas died during each of its allowed runs', async () => {
      const a = replica('e', 2);
      const b = replica('f', 2);
      await a.insert({ id: 'j-4', params, createdBy: 't', status: 'queued' });
      for (const [store, name] of [
        [a, 'e'],
        [b, 'f'],
      ] as const) {
        expect((await store.claim())?.job.id).toBe('j-4');
        await killSession(name);
        await waitFor(
          `the run on ${name} orphaned`,
          async () => (await replica('x', 2).recoverOrphans()).length > 0,
        );
      }
      expect(await a.get('j-4')).toMatchObject({ status: 'failed', attempts: 2 });
      expect((await a.get('j-4'))?.error).toContain('died during each of 2 runs');
    });

    it('gives a job back to the queue when its replica stops cleanly, and cancels from any replica', async () => {
      const a = replica('g');
      const b = replica('h');
      await a.insert({ id: 'j-5', params, createdBy: 't', status: 'queued' });
      const claim = (await a.claim())!;
      await a.release(claim, true);
      expect((await b.get('j-5'))?.status).toBe('queued');
      const again = (await b.claim())!;
      expect(again.attempt).toBe(2);
      expect(await a.cancel('j-5')).toBe(true);
      expect(await b.stillOwned([again])).toEqual(new Set());
      expect(await a.cancel('j-5')).toBe(false); // finished already
      expect((await b.get('j-5'))?.status).toBe('canceled');
    });
  },
);
