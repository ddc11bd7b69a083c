import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enroll } from '../../../agent/enroll.js';
import { openPostgres } from '../../../cloud/fleet/store/postgres.js';
import { codedStoreError } from '../../../cloud/fleet/store/unavailable.js';
import { startCloud } from '../../../cloud/main.js';
import { createLogger } from '../../../shared/logger.js';
import { waitFor } from '../../faults/procs.js';
import { PI_HARDWARE } from '../../support/hardware.js';
import { freshDatabase, postgresUnavailable } from './pg.js';

const skipReason = await postgresUnavailable();

/** A logger whose JSON lines the test can read. */
function capturedLogger(name: string) {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      done();
    },
  });
  return { lines, logger: createLogger({ name, level: 'info', pretty: false, destination }) };
}

// Under load every pooled connection can be busy: a query that waits longer than the pool's
// wait must fail with a retryable code (it was INTERNAL), and the pool's size and wait are set
// in the database URL (docs/scale.md).
describe.skipIf(skipReason !== null)(
  `the PostgreSQL pool when every connection is busy ${skipReason ? `(skipped: ${skipReason})` : ''}`,
  () => {
    let db: Awaited<ReturnType<typeof freshDatabase>>;

    beforeAll(async () => {
      db = await freshDatabase();
    });
    afterAll(async () => {
      await db?.drop();
    });

    it('takes its size and wait from the URL; a query that finds no connection is STORE_UNAVAILABLE', async () => {
      const pool = await openPostgres(`${db.url}?pool_max=2&pool_wait_ms=300`);
      const held = [await pool.connect(), await pool.connect()];
      try {
        expect(pool.totalCount).toBe(2);
        const error = await pool.query('SELECT 1').then(
          () => null,
          (e: unknown) => e,
        );
        expect(pool.totalCount).toBe(2); // it waited for one of the two; it did not open a third
        expect(codedStoreError(error)).toMatchObject({ code: 'STORE_UNAVAILABLE', retryable: true });
      } finally {
        for (const client of held) client.release();
        await pool.end();
      }
    });

    it('refuses an enrollment with STORE_UNAVAILABLE while no connection is free; the agent asks again and enrolls', async () => {
      const dir = await mkdtemp(join(tmpdir(), 'fleetml-pg-pool-'));
      const cloud = await startCloud({
        dataDir: join(dir, 'cloud'),
        httpPort: 0,
        mqttPort: 0,
        // One connection; 3 s to get it, so that startup on a loaded machine does not time out.
        database: `${db.url}?pool_max=1&pool_wait_ms=3000`,
        jobWorkers: 0,
        logger: createLogger({ name: 'cloud', level: 'silent' }),
      });
      const agentLog = capturedLogger('agent');
      let release = () => {};
      try {
        const { token } = await cloud.services.issueEnrollToken({ uses: 1 });
        // The pool's one connection, held as a long query would hold it.
        let holding = false;
        const held = cloud.services.fleet.db.connection().execute(async () => {
          holding = true;
          await new Promise<void>((resolve) => {
            release = () => resolve();
          });
        });
        await waitFor('the connection to be held', () => holding, 15_000);
        const enrolled = enroll({
          url: cloud.mqttUrl,
          token,
          hardware: { ...PI_HARDWARE, hostname: 'busy-pool' },
          agentVersion: 'test',
          logger: agentLog.logger,
          timeoutS: 1,
          signal: AbortSignal.timeout(120_000),
        });
        // Before, the reply said INTERNAL and the agent gave up (ENROLL_TOKEN).
        await waitFor(
          'a retryable refusal',
          () => agentLog.lines.some((l) => l.includes('STORE_UNAVAILABLE') && l.includes('asking again')),
          60_000,
        );
        release();
        await held;
        const identity = await enrolled;
        // The single-use token was used once, for this device.
        const devices = await cloud.services.devices.list();
        expect(devices.map((d) => d.id)).toEqual([identity.deviceId]);
        // A refusal that asking again cannot change stays final.
        await expect(
          enroll({
            url: cloud.mqttUrl,
            token,
            hardware: { ...PI_HARDWARE, hostname: 'token-used-up' },
            agentVersion: 'test',
            logger: agentLog.logger,
            timeoutS: 1,
            signal: AbortSignal.timeout(60_000),
          }),
        ).rejects.toMatchObject({ code: 'ENROLL_TOKEN' });
      } finally {
        release();
        await cloud.stop();
        await rm(dir, { recursive: true, force: true });
      }
    }, 180_000);
  },
);
