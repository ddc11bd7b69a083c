import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SimulationHandle, startSimulation } from '../../../cloud/simulator/fleet.js';
import { type FleetmlProcess, ROOT, waitFor } from '../../faults/procs.js';
import { Mosquitto, mosquittoBinary } from '../agent/mosquitto.js';
import { freshDatabase, postgresRestartUnavailable, postgresUnavailable, restartPostgres } from './pg.js';
import { ReplicaSet } from './replica-procs.js';

const binary = mosquittoBinary();
const skipReason =
  (await postgresUnavailable()) ??
  (binary || process.env.CI ? null : 'mosquitto is not installed (.ci/run installs it)') ??
  postgresRestartUnavailable();
const SAMPLE = join(ROOT, 'cloud/samples/mnist-mlp.onnx');
const DEVICES = 24;

const isLeading = (p: FleetmlProcess) => {
  const last = p.logs.filter((l) => l.msg === 'leading' || l.msg === 'following').pop();
  return last?.leader === true;
};

/** When a replica led, from its 'leading' and 'following' log lines (pino times, ms). */
const leadIntervals = (p: FleetmlProcess): Array<[number, number]> => {
  const intervals: Array<[number, number]> = [];
  let from: number | null = null;
  for (const l of p.logs) {
    if (l.msg === 'leading') from ??= Number(l.time);
    if (l.msg === 'following' && from !== null) {
      intervals.push([from, Number(l.time)]);
      from = null;
    }
  }
  if (from !== null) intervals.push([from, Number.POSITIVE_INFINITY]);
  return intervals;
};

// Two replicas on PostgreSQL behind Mosquitto, simulated devices reporting telemetry every
// 0.5 s, a rollout in waves: Mosquitto is restarted (no persistence: sessions and retained
// targets gone), then the PostgreSQL server itself (every connection of both replicas cut).
// The rollout completes, and every record sent is stored exactly once. Serial: the
// PostgreSQL restart would cut the connections of any other test running at the same time.
describe.skipIf(skipReason !== null)(
  `two replicas across a Mosquitto and a PostgreSQL restart ${skipReason ? `(skipped: ${skipReason})` : ''}`,
  () => {
    let broker: Mosquitto;
    let dir: string;
    let db: Awaited<ReturnType<typeof freshDatabase>>;
    let set: ReplicaSet;
    let sim: SimulationHandle | undefined;

    beforeAll(async () => {
      broker = await Mosquitto.start(binary ?? '/usr/sbin/mosquitto');
      dir = await mkdtemp(join(tmpdir(), 'fleetml-restarts-'));
      db = await freshDatabase();
      set = new ReplicaSet({ dataDir: join(dir, 'cloud'), mqttUrl: broker.url, database: db.url });
    });
    afterAll(async () => {
      sim?.stop();
      await sim?.done.catch(() => {});
      await set?.killAll();
      await broker?.close();
      await db?.drop();
      await rm(dir, { recursive: true, force: true });
    });

    const storedCounts = async () => {
      const client = new pg.Client({ connectionString: db.url });
      await client.connect();
      try {
        const { rows } = await client.query<{ n: string; distinct: string }>(
          `SELECT count(*) n, count(DISTINCT (device_id, seq)) "distinct" FROM telemetry`,
        );
        return { stored: Number(rows[0].n), distinct: Number(rows[0].distinct) };
      } finally {
        await client.end();
      }
    };

    it('the rollout completes, and no telemetry record is lost or stored twice', async () => {
      const first = await set.start();
      await waitFor('the first replica to lead', () => isLeading(first), 30_000);
      const second = await set.start();
      const token = (await set.api(second, 'POST', '/api/enroll-tokens', { uses: DEVICES })).body.token;
      const run = startSimulation({
        cloud: broker.url,
        enrollToken: token,
        devices: DEVICES,
        durationS: 500,
        telemetryIntervalS: 0.5,
        rampS: 2,
        resendAfterS: 3,
        drainS: 60,
        enrollRetryS: 120,
        namePrefix: 'restarts',
      });
      sim = run;
      const progress = () => JSON.stringify(run.counters);
      await waitFor(`${DEVICES} devices connected`, () => run.counters.connected === DEVICES, 120_000).catch(
        (error) => {
          throw new Error(`${(error as Error).message}; simulator: ${progress()}`);
        },
      );
      const model = await set.api(second, 'POST', '/api/models?name=restarts-mnist', await readFile(SAMPLE));
      expect(model.status).toBe(201);
      const created = await set.api(second, 'POST', '/api/rollouts', {
        model: model.body.id,
        devices: run.devices.map((d) => d.identity.deviceId),
        policy: { waveSize: 4, soakS: 2, deviceTimeoutS: 300 },
      });
      expect(created.status).toBe(201);
      const id = created.body.id;
      const replicasSay = () =>
        set.procs
          .map(
            (p, i) => `replica ${i} ${p.running ? 'running' : 'exited'}:\n${p.lines.slice(-15).join('\n')}`,
          )
          .join('\n');
      const rollout = async () =>
        (
          await set.api(second, 'GET', `/api/rollouts/${id}`).catch((error: Error) => {
            throw new Error(`${error.message}; ${replicasSay()}`);
          })
        ).body;
      await waitFor('the first wave done', async () => (await rollout()).counts.succeeded >= 4, 180_000, 200);

      // Mosquitto goes away mid-rollout and mid-ingest, and comes back empty.
      const ackedBeforeBroker = run.counters.recordsAcked;
      await broker.halt();
      await new Promise((r) => setTimeout(r, 1000));
      await broker.resume();
      await waitFor(
        'devices back and telemetry acknowledged after the Mosquitto restart',
        () => run.counters.connected === DEVICES && run.counters.recordsAcked > ackedBeforeBroker + DEVICES,
        120_000,
        100,
      ).catch((error) => {
        throw new Error(`${(error as Error).message}; simulator: ${progress()}`);
      });
      const mid = await rollout();
      expect(mid.status, JSON.stringify(mid)).toBe('running');

      // Then the PostgreSQL server restarts under both replicas.
      const ackedBeforePg = run.counters.recordsAcked;
      await restartPostgres();
      await waitFor(
        'telemetry acknowledged after the PostgreSQL restart',
        () => run.counters.recordsAcked > ackedBeforePg + DEVICES,
        120_000,
        100,
      ).catch((error) => {
        throw new Error(`${(error as Error).message}; simulator: ${progress()}`);
      });

      // Both sessions ended with the server: leadership is won again, by one replica.
      await waitFor('a leader after the PostgreSQL restart', () => set.procs.some(isLeading), 60_000);

      const done = await waitFor(
        'the rollout to finish',
        async () => {
          const r = await rollout();
          return r.status !== 'running' ? r : undefined;
        },
        300_000,
        500,
      );
      expect(done.status, JSON.stringify(done)).toBe('succeeded');
      expect(done.counts.succeeded).toBe(DEVICES);
      expect(run.counters.modelsActivated).toBe(DEVICES);
      // Both replicas lived through both restarts, and never led at the same time.
      expect(set.procs.every((p) => p.running)).toBe(true);
      const [a, b] = set.procs.map(leadIntervals);
      const overlaps = a.filter(([from, to]) => b.some(([f, t]) => from < t && f < to));
      expect(overlaps, JSON.stringify({ a, b })).toEqual([]);
      expect(a.length + b.length).toBeGreaterThanOrEqual(2); // led before and after the restart

      run.stop();
      const result = await run.done;
      expect(result.recordsUnacked).toBe(0);
      expect(result.recordsAcked).toBe(result.recordsSent);
      const counts = await storedCounts();
      console.log(JSON.stringify({ scenario: 'replica-restarts', devices: DEVICES, ...counts, result }));
      expect(counts.distinct).toBe(result.recordsSent); // nothing lost
      expect(counts.stored).toBe(result.recordsSent); // nothing stored twice
    }, 900_000);
  },
);
