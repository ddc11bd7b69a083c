import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulation } from '../../../cloud/simulator/fleet.js';
import { FleetmlProcess, freePort, waitFor } from '../../faults/procs.js';
import { Mosquitto, mosquittoBinary } from '../agent/mosquitto.js';
import { freshDatabase, postgresUnavailable } from './pg.js';

const binary = mosquittoBinary();
const skipReason =
  (await postgresUnavailable()) ??
  (binary || process.env.CI ? null : 'mosquitto is not installed (.ci/run installs it)');

const isLeading = (p: FleetmlProcess) => p.logs.some((l) => l.msg === 'leading' && l.leader === true);

// Two `fleetml cloud start` processes on PostgreSQL and Mosquitto; the leader is killed with
// SIGKILL while simulated devices report telemetry.
describe.skipIf(skipReason !== null)(
  `replica failover ${skipReason ? `(skipped: ${skipReason})` : ''}`,
  () => {
    let broker: Mosquitto;
    let dir: string;
    let db: Awaited<ReturnType<typeof freshDatabase>>;
    const procs: FleetmlProcess[] = [];

    beforeAll(async () => {
      broker = await Mosquitto.start(binary ?? '/usr/sbin/mosquitto');
      dir = await mkdtemp(join(tmpdir(), 'fleetml-failover-'));
      db = await freshDatabase();
    });
    afterAll(async () => {
      for (const p of procs) await p.kill('SIGKILL');
      await broker?.close();
      await db?.drop();
      await rm(dir, { recursive: true, force: true });
    });

    const startReplica = async () => {
      const proc = new FleetmlProcess([
        ...['cloud', 'start', '--data-dir', join(dir, 'cloud'), '--http-port', String(await freePort())],
        ...['--mqtt-url', broker.url, '--database', db.url],
      ]);
      procs.push(proc);
      await proc.line(/^token: /, 90_000);
      return proc;
    };

    it('another replica leads within 15 s of kill -9, and no telemetry is lost or stored twice', async () => {
      const first = await startReplica();
      await waitFor('the first replica to lead', () => isLeading(first), 30_000);
      const second = await startReplica();
      expect(isLeading(second)).toBe(false);
      // The console line is a sign-in link (`http://host:port/#token=…`): its origin is the API.
      const httpUrl = (p: FleetmlProcess) =>
        new URL(p.lines.find((l) => l.startsWith('console: '))!.slice(9)).origin;
      const adminToken = (await readFile(join(dir, 'cloud', 'admin-token'), 'utf8')).trim();
      const tokenResponse = await fetch(`${httpUrl(second)}/api/enroll-tokens`, {
        method: 'POST',
        headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({ uses: 8 }),
      });
      expect(tokenResponse.status).toBe(201);
      const { token } = (await tokenResponse.json()) as { token: string };

      const sim = startSimulation({
        cloud: broker.url,
        enrollToken: token,
        devices: 8,
        durationS: 14,
        telemetryIntervalS: 0.5,
        rampS: 1,
        resendAfterS: 3,
        drainS: 40,
        namePrefix: 'failover',
      });
      await waitFor('telemetry flowing', () => sim.counters.recordsAcked > 40, 60_000);
      const killedAt = Date.now();
      await first.kill('SIGKILL');
      await waitFor('the second replica to lead', () => isLeading(second), 15_000, 20);
      const takeoverMs = Date.now() - killedAt;
      expect(takeoverMs).toBeLessThanOrEqual(15_000);

      const result = await sim.done;
      expect(result.recordsUnacked).toBe(0);
      expect(result.recordsAcked).toBe(result.recordsSent);
      const client = new pg.Client({ connectionString: db.url });
      await client.connect();
      try {
        const { rows } = await client.query<{ n: string; distinct: string }>(
          `SELECT count(*) n, count(DISTINCT (device_id, seq)) "distinct" FROM telemetry`,
        );
        expect(Number(rows[0].n)).toBe(result.recordsSent); // nothing lost
        expect(Number(rows[0].distinct)).toBe(result.recordsSent); // nothing stored twice
      } finally {
        await client.end();
      }
      const health = await fetch(`${httpUrl(second)}/api/fleet/health`, {
        headers: { authorization: `Bearer ${adminToken}` },
      });
      expect(((await health.json()) as { telemetryRecords: number }).telemetryRecords).toBe(
        result.recordsSent,
      );
    }, 240_000);
  },
);
