/**
 * A Mosquitto restart and a PostgreSQL restart during a rollout to simulated devices and during
 * their telemetry, with 2 cloud replicas (issue 17).
 *
 *   nice -n 10 npx tsx scripts/bench/replica-restarts.ts [--devices 1000] [--wave 100]
 *     [--interval 2] [--database postgres://fleetml:fleetml@127.0.0.1:5432/fleetml_test] [--write]
 *
 * Two `fleetml cloud start --database … --mqtt-url …` replicas on one data directory; N devices
 * enrolled through the real protocol, connected (one MQTT connection each) and reporting one
 * record every `interval` s; a rollout of the sample model in waves of `wave`. Once the first
 * wave is done Mosquitto is stopped and started again (no persistence: sessions and retained
 * targets are gone); once the rollout has moved on, the local PostgreSQL server is restarted
 * (`pg_ctlcluster … restart`: every connection of both replicas is cut; needs root, and cuts
 * whatever else uses that server). Reports how long devices and acknowledgements took to come
 * back, whether the rollout completed, and whether every record sent was stored exactly once.
 * Without --write it only prints.
 */
import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import pg from 'pg';
import { startSimulation } from '../../cloud/simulator/fleet.js';
import { BenchReplica, startBenchMosquitto } from './_replicas.js';
import { machineLine, markdownTable, writeBenchmarkSection } from './report.js';

const { values: args } = parseArgs({
  options: {
    devices: { type: 'string', default: '1000' },
    wave: { type: 'string', default: '100' },
    interval: { type: 'string', default: '2' },
    database: { type: 'string', default: 'postgres://fleetml:fleetml@127.0.0.1:5432/fleetml_test' },
    write: { type: 'boolean', default: false },
  },
});
const devices = Number(args.devices);
const wave = Number(args.wave);
const intervalS = Number(args.interval);
const SAMPLE = resolve(import.meta.dirname, '../../cloud/samples/mnist-mlp.onnx');
const log = (msg: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const load = () => loadavg()[0].toFixed(1);
const seconds = (fromMs: number) => ((performance.now() - fromMs) / 1000).toFixed(1);

async function until(what: string, probe: () => boolean | Promise<boolean>, ms: number): Promise<void> {
  const deadline = performance.now() + ms;
  while (!(await probe())) {
    if (performance.now() > deadline) throw new Error(`timed out after ${ms / 1000} s waiting for ${what}`);
    await sleep(100);
  }
}

async function restartPostgres(): Promise<void> {
  const listed = spawnSync('pg_lsclusters', ['--no-header'], { encoding: 'utf8' });
  const [version, name] = listed.stdout.trim().split('\n')[0]?.split(/\s+/) ?? [];
  if (!version || !name) throw new Error('no local PostgreSQL cluster (pg_lsclusters)');
  await promisify(execFile)('pg_ctlcluster', ['--skip-systemctl-redirect', version, name, 'restart']);
}

const dir = await mkdtemp(join(tmpdir(), 'fleetml-bench-restarts-'));
const mosquitto = await startBenchMosquitto(dir);
const dbName = `fleetml_bench_${randomBytes(3).toString('hex')}`;
const admin = new pg.Client({ connectionString: args.database });
await admin.connect();
await admin.query(`CREATE DATABASE ${dbName}`);
await admin.end();
const dbUrl = new URL(args.database);
dbUrl.pathname = `/${dbName}`;
const database = dbUrl.toString();
const counts = async () => {
  const client = new pg.Client({ connectionString: database });
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

const replicas = [0, 1].map(() => new BenchReplica(join(dir, 'cloud'), mosquitto.url, database));
const restarts: Array<Array<string | number>> = [];
let summary: Array<string | number> = [];
try {
  for (const r of replicas) await r.ready();
  const api = async (method: string, path: string, body?: unknown) => {
    const adminToken = (await readFile(join(dir, 'cloud', 'admin-token'), 'utf8')).trim();
    const raw = body instanceof Uint8Array;
    const response = await fetch(`${replicas[1].httpUrl}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${adminToken}`,
        ...(body === undefined
          ? {}
          : { 'content-type': raw ? 'application/octet-stream' : 'application/json' }),
      },
      body: body === undefined ? undefined : raw ? body : JSON.stringify(body),
    });
    return (await response.json()) as any;
  };
  const sim = startSimulation({
    cloud: mosquitto.url,
    enrollToken: await replicas[1].enrollToken(devices),
    devices,
    durationS: 7200,
    telemetryIntervalS: intervalS,
    rampS: Math.max(5, devices / 50),
    enrollConcurrency: 50,
    enrollRetryS: 120,
    resendAfterS: 10,
    drainS: 120,
    namePrefix: 'restarts',
  });
  const connectStarted = performance.now();
  await until(`${devices} devices connected`, () => sim.counters.connected === devices, 1_200_000);
  log(`${devices} devices enrolled and connected in ${seconds(connectStarted)} s (load ${load()})`);
  const model = await api('POST', '/api/models?name=restarts-mnist', new Uint8Array(await readFile(SAMPLE)));
  const rolloutStarted = performance.now();
  const created = await api('POST', '/api/rollouts', {
    model: model.id,
    devices: sim.devices.map((d) => d.identity.deviceId),
    policy: { waveSize: wave, deviceTimeoutS: 1800 },
  });
  const rollout = () => api('GET', `/api/rollouts/${created.id}`);
  const succeeded = async () => (await rollout()).counts.succeeded as number;
  await until('the first wave', async () => (await succeeded()) >= wave, 1_800_000);

  /** Restarts one server, then times how long until every device is back and acks flow again. */
  const restart = async (what: string, action: () => Promise<void>) => {
    const doneBefore = await succeeded();
    const acked = sim.counters.recordsAcked;
    const t0 = performance.now();
    await action();
    const downS = seconds(t0);
    await until(`acks after the ${what} restart`, () => sim.counters.recordsAcked > acked + devices, 600_000);
    const acksS = seconds(t0);
    await until(`devices back after the ${what} restart`, () => sim.counters.connected === devices, 600_000);
    const backS = seconds(t0);
    log(`${what}: down+up ${downS} s, acks again after ${acksS} s, all devices back after ${backS} s`);
    restarts.push([what, `${doneBefore}/${devices}`, downS, acksS, backS, load()]);
  };
  await restart('Mosquitto', async () => {
    await mosquitto.stop();
    await sleep(1000);
    await mosquitto.start();
  });
  await until('the rollout to move on', async () => (await succeeded()) >= 2 * wave, 1_800_000);
  await restart('PostgreSQL', restartPostgres);
  await until('the rollout to finish', async () => (await rollout()).status !== 'running', 3_600_000);
  const done = await rollout();
  const rolloutS = seconds(rolloutStarted);
  log(`rollout ${done.status}: ${done.counts.succeeded}/${devices} in ${rolloutS} s`);
  sim.stop();
  const result = await sim.done;
  const stored = await counts();
  summary = [
    done.status,
    `${done.counts.succeeded}/${devices}`,
    rolloutS,
    replicas.every((r) => r.child.exitCode === null) ? 'both' : 'no',
    result.recordsSent,
    result.recordsAcked,
    stored.stored,
    result.recordsSent - stored.distinct,
    stored.stored - stored.distinct,
    load(),
  ];
} finally {
  for (const r of replicas) await r.kill('SIGKILL');
  await mosquitto.stop();
  const cleanup = new pg.Client({ connectionString: args.database });
  await cleanup.connect();
  await cleanup.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  await cleanup.end();
  await rm(dir, { recursive: true, force: true });
}

const body = [
  `\`nice -n 10 npx tsx scripts/bench/replica-restarts.ts --devices ${devices} --wave ${wave} --interval ${intervalS}\` — ${new Date().toISOString().slice(0, 10)}, ${machineLine()}. Two replicas, Mosquitto 2 (no persistence), PostgreSQL 15 and the simulator share these cores with other work (1-minute load average in the last column). Devices send one record every ${intervalS} s (resent after 10 s without ack); the rollout of the 204 KB sample model goes in waves of ${wave}. Mosquitto is stopped and started again after the first wave, the PostgreSQL server restarted (\`pg_ctlcluster restart\`) after the second.`,
  '',
  markdownTable(
    [
      'restart',
      'rollout done then',
      'down+up s',
      'acks flow again after s',
      'all devices back after s',
      'load',
    ],
    restarts,
  ),
  '',
  markdownTable(
    [
      'rollout',
      'devices updated',
      'rollout s',
      'replicas alive',
      'records sent',
      'acked',
      'stored',
      'lost',
      'stored twice',
      'load',
    ],
    [summary],
  ),
].join('\n');
if (args.write)
  await writeBenchmarkSection('Replicas across Mosquitto and PostgreSQL restarts (issue 17)', body);
process.stdout.write(`${body}\n`);
process.exit(0);
