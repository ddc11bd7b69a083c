import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulation } from '../../../cloud/simulator/fleet.js';
import { type FleetmlProcess, ROOT, waitFor } from '../../faults/procs.js';
import { Mosquitto, mosquittoBinary } from '../agent/mosquitto.js';
import { freshDatabase, postgresUnavailable } from './pg.js';
import { ReplicaSet, SseClient } from './replica-procs.js';

const binary = mosquittoBinary();
const skipReason =
  (await postgresUnavailable()) ??
  (binary || process.env.CI ? null : 'mosquitto is not installed (.ci/run installs it)');
const SAMPLE = join(ROOT, 'cloud/samples/mnist-mlp.onnx');

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

// What replicas on PostgreSQL share besides telemetry: live events (LISTEN/NOTIFY), the
// compression job queue, and the artifact store. Real `fleetml cloud start` processes, a real
// Mosquitto and PostgreSQL; the replicas are killed with SIGKILL where the test says so.
describe.skipIf(skipReason !== null)(
  `replicas share events, jobs and artifacts ${skipReason ? `(skipped: ${skipReason})` : ''}`,
  () => {
    let broker: Mosquitto;
    let dir: string;
    let db: Awaited<ReturnType<typeof freshDatabase>>;
    let set: ReplicaSet;
    let a: FleetmlProcess; // accepts the job; a and c each have a free worker
    let b: FleetmlProcess; // runs no jobs (--job-workers 0): only ever hears of them
    let c: FleetmlProcess;
    let survivor: FleetmlProcess;
    let modelId: string;
    let jobId: string;
    let sse: SseClient | undefined;

    beforeAll(async () => {
      broker = await Mosquitto.start(binary ?? '/usr/sbin/mosquitto');
      dir = await mkdtemp(join(tmpdir(), 'fleetml-replica-services-'));
      db = await freshDatabase();
      set = new ReplicaSet({
        dataDir: join(dir, 'cloud'),
        mqttUrl: broker.url,
        database: db.url,
        extraArgs: ['--artifacts-dir', join(dir, 'shared-artifacts')],
      });
      a = await set.start();
      b = await set.start(['--job-workers', '0']);
      c = await set.start();
    }, 300_000);
    afterAll(async () => {
      sse?.close();
      await set?.killAll();
      await broker?.close();
      await db?.drop();
      await rm(dir, { recursive: true, force: true });
    });

    it('an event made on one replica reaches an SSE client of another', async () => {
      sse = await SseClient.open(ReplicaSet.httpUrl(b), await set.adminToken());
      const upload = await set.api(a, 'POST', '/api/models?name=mnist-mlp', await readFile(SAMPLE));
      expect(upload.status).toBe(201);
      modelId = upload.body.id;
      const start = await set.api(a, 'POST', '/api/jobs', {
        model: modelId,
        profile: 'x86-vnni',
        data: 'mnist',
        // A student big enough that its run lasts seconds: the kill below must land while the
        // job's child is still working (the planner's default student is done in 0.1 s).
        student: 'mlp:1024,1024',
        epochs: 10,
        variants: ['int8', 'student'],
      });
      expect(start.status).toBe(201);
      jobId = start.body.id;
      // b accepted no job and runs none: a or c made this event.
      await waitFor(
        'the job event on b',
        () => sse!.events.some((e) => e.event === 'job' && e.data.jobId === jobId),
        30_000,
      );
    }, 120_000);

    it('a job whose replica is killed is run again by another, and registered once', async () => {
      const running = await waitFor(
        'the job running with progress',
        async () => {
          const job = (await set.api(b, 'GET', `/api/jobs/${jobId}`)).body;
          return job.status === 'running' && job.progress > 0 ? job : undefined;
        },
        120_000,
        200,
      );
      expect(running.attempts).toBe(1);
      const victim = [a, c].find((p) => running.runner.includes(`:${p.pid}:`))!;
      expect(victim).toBeDefined();
      survivor = victim === a ? c : a;
      const started = await waitFor(
        'the victim’s log of the job’s child process',
        () => victim.logs.find((l) => l.msg === 'compression job started' && l.job === jobId),
        10_000,
      );
      const childPid = Number(started.pid);
      expect(alive(childPid)).toBe(true);
      await victim.kill('SIGKILL');
      // The job's child process ends with its replica (it would otherwise run twice).
      await waitFor('the killed replica’s compression process to exit', () => !alive(childPid), 30_000);
      const done = await waitFor(
        'the job to finish on the other replica',
        async () => {
          const job = (await set.api(b, 'GET', `/api/jobs/${jobId}`)).body;
          return ['succeeded', 'failed', 'canceled'].includes(job.status) ? job : undefined;
        },
        400_000,
        500,
      );
      expect(done.error).toBeNull();
      expect(done.status).toBe('succeeded');
      expect(done.attempts).toBe(2);
      expect(done.runner).toContain(`:${survivor.pid}:`);
      const models = (await set.api(b, 'GET', '/api/models')).body;
      const list = Array.isArray(models) ? models : models.models;
      const variants = list.filter((m: { sourceModelId?: string }) => m.sourceModelId === modelId);
      expect(variants.map((m: { variant: string }) => m.variant).sort()).toEqual([
        'int8@x86-vnni',
        'student@x86-vnni',
      ]);
    }, 600_000);

    it('a model uploaded through one replica reaches a device through another', async () => {
      const uploader = b;
      const model = await set.api(uploader, 'POST', '/api/models?name=shared-mnist', await readFile(SAMPLE));
      expect(model.status).toBe(201);
      const sha: string = model.body.sha256;
      expect(existsSync(join(dir, 'shared-artifacts', sha.slice(0, 2), sha))).toBe(true);
      expect(existsSync(join(dir, 'cloud', 'artifacts', sha.slice(0, 2), sha))).toBe(false);
      await uploader.kill('SIGTERM');
      const server = survivor;
      const token = (await set.api(server, 'POST', '/api/enroll-tokens', { uses: 1 })).body.token;
      const sim = startSimulation({
        cloud: broker.url,
        enrollToken: token,
        devices: 1,
        durationS: 180,
        telemetryIntervalS: 2,
        rampS: 0,
        namePrefix: 'shared-store',
      });
      try {
        await waitFor('the simulated device connected', () => sim.counters.connected === 1, 60_000);
        const deviceId = sim.devices[0].identity.deviceId;
        const deploy = await set.api(server, 'POST', '/api/deployments', {
          model: model.body.id,
          devices: [deviceId],
        });
        expect(deploy.status).toBe(201);
        // The device checks every block's hash and the whole artifact's before it activates.
        await waitFor('the model active on the device', () => sim.counters.modelsActivated === 1, 120_000);
        expect(sim.counters.blocksReceived).toBeGreaterThan(0);
        expect(sim.counters.transferFailures).toBe(0);
      } finally {
        sim.stop();
        await sim.done;
      }
    }, 300_000);
  },
);
