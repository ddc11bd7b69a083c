import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RETRY_AFTER_S } from '../../../cloud/fleet/console/error-reply.js';
import { EnrollmentLedger } from '../../../cloud/fleet/identity/enroll-requests.js';
import { hashSecret } from '../../../cloud/fleet/identity/secrets.js';
import { createMessageRouter } from '../../../cloud/fleet/ingest/router.js';
import { TelemetryRepository } from '../../../cloud/fleet/ingest/telemetry.js';
import { DeviceRepository } from '../../../cloud/fleet/inventory/devices.js';
import { PgAdvisoryLeadership } from '../../../cloud/fleet/leader/pg-advisory.js';
import { DEFAULT_MONITORING_OPTIONS } from '../../../cloud/fleet/monitoring/options.js';
import { openFleetStore } from '../../../cloud/fleet/store/kysely.js';
import { PgIngestQueue } from '../../../cloud/fleet/store/pg-ingest.js';
import { PgTelemetryStore } from '../../../cloud/fleet/store/pg-telemetry.js';
import { openPostgres } from '../../../cloud/fleet/store/postgres.js';
import { startCloud } from '../../../cloud/main.js';
import { createLogger } from '../../../shared/logger.js';
import { deviceTopic, encodeJson } from '../../../shared/protocol/index.js';
import { waitFor } from '../../faults/procs.js';
import { PausableProxy } from '../../faults/proxy.js';
import { PI_HARDWARE } from '../../support/hardware.js';
import { freshDatabase, postgresUnavailable } from './pg.js';

const skipReason = await postgresUnavailable();

// What a PostgreSQL restart does to a replica, without restarting the server other tests use:
// its sessions end (pg_terminate_backend, or a proxy that cuts them and refuses new ones for a
// while), then the database answers again. The whole restart is restarts.serial.test.ts.
describe.skipIf(skipReason !== null)(
  `replica parts across a PostgreSQL outage ${skipReason ? `(skipped: ${skipReason})` : ''}`,
  () => {
    let db: Awaited<ReturnType<typeof freshDatabase>>;
    let proxy: PausableProxy;
    let viaProxy: string;

    beforeAll(async () => {
      db = await freshDatabase();
      const direct = new URL(db.url);
      proxy = await PausableProxy.start(Number(direct.port || 5432));
      const proxied = new URL(db.url);
      proxied.port = new URL(proxy.url).port;
      viaProxy = proxied.toString();
    });
    afterAll(async () => {
      await proxy?.close();
      await db?.drop();
    });

    /** Every session through the proxy ends, and new ones are refused until proxy.resume(). */
    const cutSessions = () => {
      proxy.pause();
      proxy.resume(); // drops the open connections
      proxy.pause();
    };

    /** Ends this database's sessions of one kind from the server side, as a restart does. */
    const terminate = async (applicationNamePrefix: string) => {
      const admin = new pg.Client({ connectionString: db.url });
      await admin.connect();
      try {
        const { rowCount } = await admin.query(
          `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
           WHERE datname = current_database() AND application_name LIKE $1 AND pid <> pg_backend_pid()`,
          [`${applicationNamePrefix}%`],
        );
        return rowCount ?? 0;
      } finally {
        await admin.end();
      }
    };

    it('a pool client whose session ends while checked out does not end the process', async () => {
      const pool = await openPostgres(viaProxy);
      try {
        const client = await pool.connect();
        // pg-pool listens on idle clients only. Without a listener of our own on the checked-out
        // client, the 'error' event below is an uncaught exception ("Connection terminated
        // unexpectedly": vitest fails the run, a cloud process exits).
        expect(client.listenerCount('error')).toBeGreaterThan(0);
        cutSessions();
        await expect(client.query('SELECT 1')).rejects.toThrow();
        client.release(true);
        proxy.resume();
        const { rows } = await pool.query<{ one: number }>('SELECT 1 one');
        expect(rows[0].one).toBe(1);
      } finally {
        proxy.resume();
        await pool.end();
      }
    });

    it('the HTTP API answers a retryable 503 (STORE_UNAVAILABLE, Retry-After) while the store is away', async () => {
      const dir = await mkdtemp(join(tmpdir(), 'fleetml-pg-outage-'));
      const cloud = await startCloud({
        dataDir: join(dir, 'cloud'),
        httpPort: 0,
        mqttPort: 0,
        database: viaProxy,
        logger: createLogger({ name: 't', level: 'silent' }),
      });
      const devices = () =>
        fetch(`${cloud.httpUrl}/api/devices`, { headers: { authorization: `Bearer ${cloud.adminToken}` } });
      try {
        expect((await devices()).status).toBe(200);
        cutSessions();
        // It was 500 INTERNAL, which tells a client not to try again.
        const refused = await devices();
        expect(refused.status).toBe(503);
        expect(refused.headers.get('retry-after')).toBe(String(RETRY_AFTER_S));
        expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('STORE_UNAVAILABLE');
        proxy.resume();
        await waitFor('the API to answer again', async () => (await devices()).status === 200, 30_000, 250);
      } finally {
        proxy.resume();
        await cloud.stop();
        await rm(dir, { recursive: true, force: true });
      }
    });

    it('a leader whose session ends steps down at once, so two never lead together', async () => {
      // A polls once a minute: only noticing the end of its session can make it step down
      // before B (polling every 100 ms) takes the lock.
      const a = new PgAdvisoryLeadership(db.url, { pollMs: 60_000 });
      const b = new PgAdvisoryLeadership(db.url, { pollMs: 100 });
      let together = 0;
      for (const [self, other] of [
        [a, b],
        [b, a],
      ] as const)
        self.onChange((leader) => {
          if (leader && other.isLeader) together++;
        });
      await a.start();
      await b.start();
      try {
        expect(a.isLeader).toBe(true);
        expect(b.isLeader).toBe(false);
        expect(await terminate(`fleetml-leader ${a.replicaId.slice(0, 20)}`)).toBe(1);
        await waitFor('B to take over', () => b.isLeader, 15_000);
        expect(a.isLeader).toBe(false);
        expect(together).toBe(0);
      } finally {
        await a.stop();
        await b.stop();
      }
    });

    it('a lone leader whose session ends leads again once it reconnects', async () => {
      const a = new PgAdvisoryLeadership(db.url, { pollMs: 200 });
      const changes: boolean[] = [];
      a.onChange((leader) => changes.push(leader));
      await a.start();
      try {
        expect(await terminate(`fleetml-leader ${a.replicaId.slice(0, 20)}`)).toBe(1);
        await waitFor('leading again', () => changes.length >= 3, 15_000);
        expect(changes).toEqual([true, false, true]);
      } finally {
        await a.stop();
      }
    });

    it('state and bench reports sent while the store is unreachable are applied when it is back', async () => {
      const pool = await openPostgres(viaProxy);
      const fleet = await openFleetStore({ postgres: pool });
      const devices = new DeviceRepository(fleet);
      const telemetry = new TelemetryRepository(fleet);
      const ingest = new PgIngestQueue({
        store: new PgTelemetryStore(pool, DEFAULT_MONITORING_OPTIONS),
        profileOf: () => null,
        options: DEFAULT_MONITORING_OPTIONS,
      });
      const router = createMessageRouter({
        devices,
        enrollments: new EnrollmentLedger(fleet),
        telemetry,
        ingest,
        publisher: { publish: async () => {} },
        logger: pino({ level: 'silent' }),
        storeRetry: { firstDelayMs: 100 },
      });
      try {
        await devices.create({
          id: 'd1',
          name: 'd1',
          secretHash: hashSecret('s'),
          profile: null,
          hardware: PI_HARDWARE,
        });
        const sha = 'a'.repeat(64);
        const state = (phase: 'installing' | 'active', at: string) =>
          encodeJson({
            v: 1,
            targetVersion: 2,
            phase,
            activeModel: phase === 'active' ? { modelId: 'm-1', sha256: sha, version: 2 } : null,
            progress: null,
            error: null,
            at,
          });
        const bench = encodeJson({
          v: 1,
          modelId: 'm-1',
          sha256: sha,
          ep: 'cpu',
          runs: 200,
          warmupRuns: 10,
          p50Ms: 1,
          p90Ms: 1.5,
          p99Ms: 2,
          maxMs: 3,
          meanMs: 1.1,
          throughput: 900,
          loadMs: 20,
          at: new Date().toISOString(),
        });
        cutSessions();
        const t = Date.now();
        const handled = [
          router.handle(deviceTopic('d1', 'state'), state('installing', new Date(t).toISOString())),
          router.handle(deviceTopic('d1', 'state'), state('active', new Date(t + 1).toISOString())),
          router.handle(deviceTopic('d1', 'bench'), bench),
        ];
        await waitFor('retries while the store is away', () => router.stats.storeRetries >= 2, 15_000);
        expect(router.stats.handled).toBe(0);
        proxy.resume();
        await Promise.all(handled);
        expect(router.stats).toMatchObject({ handled: 3, rejected: 0 });
        expect(await devices.get('d1')).toMatchObject({
          phase: 'active',
          appliedVersion: 2,
          activeSha256: sha,
        });
        expect((await telemetry.latestBench('d1'))?.sha256).toBe(sha);
      } finally {
        proxy.resume();
        await ingest.close();
        await pool.end().catch(() => {});
      }
    });

    it('gives a report up (coded, logged) when the store stays away longer than the wait', async () => {
      const pool = await openPostgres(viaProxy);
      const fleet = await openFleetStore({ postgres: pool });
      const router = createMessageRouter({
        devices: new DeviceRepository(fleet),
        enrollments: new EnrollmentLedger(fleet),
        telemetry: new TelemetryRepository(fleet),
        ingest: new PgIngestQueue({
          store: new PgTelemetryStore(pool, DEFAULT_MONITORING_OPTIONS),
          profileOf: () => null,
          options: DEFAULT_MONITORING_OPTIONS,
        }),
        publisher: { publish: async () => {} },
        logger: pino({ level: 'silent' }),
        storeRetry: { firstDelayMs: 100, maxWaitMs: 1_000 },
      });
      try {
        cutSessions();
        await router.handle(
          deviceTopic('d2', 'status'),
          encodeJson({ v: 1, online: true, at: new Date().toISOString() }),
        );
        expect(router.stats.storeRetries).toBeGreaterThan(0);
        expect(router.stats.rejected).toBe(1);
        expect(router.stats.rejectedByCode).toEqual({ STORE_UNAVAILABLE: 1 });
      } finally {
        proxy.resume();
        await pool.end().catch(() => {});
      }
    });
  },
);
