/**
 * Two cloud replicas on PostgreSQL behind Mosquitto, N simulated devices reporting telemetry,
 * and four disruptions, each in the middle of its own rollout (issue 17): `kill -9` of the
 * leader, `kill -9` of a follower (each replaced by a new replica afterwards), a Mosquitto
 * restart (no persistence: sessions and retained targets gone) and a restart of the local
 * PostgreSQL server (`pg_ctlcluster … restart`: needs root, and cuts whatever else uses it).
 *
 *   nice -n 10 npx tsx scripts/bench/replica-restarts.ts [--devices 1000] [--wave 200]
 *     [--interval 2] [--cases leader,follower,mosquitto,postgres]
 *     [--database postgres://fleetml:fleetml@127.0.0.1:5432/fleetml_test] [--write]
 *
 * Per case: the rollout's outcome, how long the fleet had no leader (takeover), how long until
 * telemetry was acknowledged again, and, record by record, that every record the devices had
 * acknowledged is stored and none twice. Without --write it only prints.
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
import { auditTelemetry } from './_telemetry-audit.js';
import { machineLine, markdownTable, writeBenchmarkSection } from './report.js';

const { values: args } = parseArgs({
  options: {
    devices: { type: 'string', default: '1000' },
    wave: { type: 'string', default: '200' },
    interval: { type: 'string', default: '2' },
    cases: { type: 'string', default: 'leader,follower,mosquitto,postgres' },
    database: { type: 'string', default: 'postgres://fleetml:fleetml@127.0.0.1:5432/fleetml_test' },
    write: { type: 'boolean', default: false },
  },
});
const devices = Number(args.devices);
const wave = Number(args.wave);
const intervalS = Number(args.interval);
const cases = args.cases.split(',') as Array<'leader' | 'follower' | 'mosquitto' | 'postgres'>;
const SAMPLE = resolve(import.meta.dirname, '../../cloud/samples/mnist-mlp.onnx');
const log = (msg: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const load = () => loadavg()[0].toFixed(1);
const since = (fromMs: number) => Number(((performance.now() - fromMs) / 1000).toFixed(1));

async function until(what: string, probe: () => boolean | Promise<boolean>, ms: number): Promise<void> {
  const deadline = performance.now() + ms;
  // A probe that throws (an API call while PostgreSQL restarts) counts as not yet.
  while (
    !(await Promise.resolve()
      .then(probe)
      .catch(() => false))
  ) {
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

/** The sample model with a different doc_string (ONNX field 6, appended: the last one wins): new bytes, same graph. */
function sampleVariant(bytes: Buffer, label: string): Uint8Array {
  const text = Buffer.from(`fleetml replica-restarts ${label}`);
  return new Uint8Array(Buffer.concat([bytes, Buffer.from([0x32, text.length]), text]));
}

const dir = await mkdtemp(join(tmpdir(), 'fleetml-bench-restarts-'));
const mosquitto = await startBenchMosquitto(dir);
const dbName = `restarts_bench_${randomBytes(3).toString('hex')}`;
const admin = new pg.Client({ connectionString: args.database });
await admin.connect();
await admin.query(`CREATE DATABASE ${dbName}`);
await admin.end();
const dbUrl = new URL(args.database);
dbUrl.pathname = `/${dbName}`;
const database = dbUrl.toString();

const replicas: BenchReplica[] = [];
const alive = () => replicas.filter((r) => r.child.exitCode === null && r.child.signalCode === null);
const addReplica = async () => {
  const replica = new BenchReplica(join(dir, 'cloud'), mosquitto.url, database);
  replicas.push(replica);
  await replica.ready();
  return replica;
};
/** A call of the cloud's HTTP API; T is the part of the answer the caller reads. */
const api = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
  const adminToken = (await readFile(join(dir, 'cloud', 'admin-token'), 'utf8')).trim();
  const raw = body instanceof Uint8Array;
  const response = await fetch(`${alive()[0].httpUrl}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${adminToken}`,
      ...(body === undefined
        ? {}
        : { 'content-type': raw ? 'application/octet-stream' : 'application/json' }),
    },
    body: body === undefined ? undefined : raw ? body : JSON.stringify(body),
  });
  const json = (await response.json()) as T;
  if (response.status >= 400)
    throw new Error(`${method} ${path}: ${response.status} ${JSON.stringify(json)}`);
  return json;
};

/** Watches leadership every 100 ms: the longest time without a leader, and whether two ever led. */
function watchLeaders() {
  let leaderlessSince: number | null = null;
  let longestGapS = 0;
  let mostLeaders = 0;
  const timer = setInterval(() => {
    const leading = alive().filter((r) => r.leading).length;
    mostLeaders = Math.max(mostLeaders, leading);
    if (leading === 0) leaderlessSince ??= performance.now();
    else if (leaderlessSince !== null) {
      longestGapS = Math.max(longestGapS, since(leaderlessSince));
      leaderlessSince = null;
    }
  }, 100);
  return {
    stop: () => {
      clearInterval(timer);
      return { gapS: leaderlessSince === null ? longestGapS : Number.NaN, mostLeaders };
    },
  };
}

const rows: Array<Array<string | number>> = [];
let finalRow: Array<string | number> = [];
let fleetSize = 0;
try {
  await addReplica();
  await until('the first replica to lead', () => replicas[0].leading, 60_000);
  await addReplica();
  const sim = startSimulation({
    cloud: mosquitto.url,
    enrollToken: await replicas[1].enrollToken(devices),
    devices,
    durationS: 4 * 3600,
    telemetryIntervalS: intervalS,
    rampS: Math.max(5, devices / 50),
    enrollConcurrency: 50,
    enrollRetryS: 120,
    resendAfterS: 10,
    drainS: 120,
    namePrefix: 'restarts',
  });
  const connectStarted = performance.now();
  // Every device, or (a loaded machine loses the odd enrollment reply; the simulator asks again
  // only after enrollRetryS) all but 2 % once no more came for 60 s: the run goes on with those.
  let lastCount = -1;
  let lastChange = performance.now();
  await until(
    `${devices} devices connected`,
    () => {
      const n = sim.counters.connected;
      if (n !== lastCount) [lastCount, lastChange] = [n, performance.now()];
      return n === devices || (n >= devices * 0.98 && since(lastChange) > 60);
    },
    1_800_000,
  );
  const fleet = sim.devices.length;
  fleetSize = fleet;
  log(`${fleet} of ${devices} devices enrolled and connected in ${since(connectStarted)} s (load ${load()})`);
  const sample = await readFile(SAMPLE);
  const ledgers = () => sim.devices.map((d) => d.telemetryLedger());

  /** The disruption of one case, and what brings the set back to two replicas afterwards. */
  const disrupt: Record<(typeof cases)[number], () => Promise<void>> = {
    leader: async () => {
      const leader = alive().find((r) => r.leading);
      if (!leader) throw new Error('no leader to kill');
      await leader.kill('SIGKILL');
    },
    follower: async () => {
      const follower = alive().find((r) => !r.leading);
      if (!follower) throw new Error('no follower to kill');
      await follower.kill('SIGKILL');
    },
    mosquitto: async () => {
      await mosquitto.stop();
      await sleep(1000);
      await mosquitto.start();
    },
    postgres: restartPostgres,
  };
  const restore = async () => {
    while (alive().length < 2) await addReplica();
  };

  for (const [i, name] of cases.entries()) {
    const model = await api<{ id: string }>(
      'POST',
      `/api/models?name=restarts-${name}`,
      sampleVariant(sample, name),
    );
    const before = await auditTelemetry(database, ledgers());
    const started = performance.now();
    const created = await api<{ id: string }>('POST', '/api/rollouts', {
      model: model.id,
      devices: sim.devices.map((d) => d.identity.deviceId),
      policy: { waveSize: wave, deviceTimeoutS: 1800 },
    });
    const rollout = () =>
      api<{ status: string; counts: { succeeded: number } }>('GET', `/api/rollouts/${created.id}`);
    await until(
      `case ${name}: the first wave`,
      async () => (await rollout()).counts.succeeded >= wave,
      1_800_000,
    );
    const doneBefore = (await rollout()).counts.succeeded;
    const acked = sim.counters.recordsAcked;
    const leaders = watchLeaders();
    const t0 = performance.now();
    await disrupt[name]();
    const disruptionS = since(t0);
    await until(`case ${name}: acks again`, () => sim.counters.recordsAcked > acked + fleet, 600_000);
    const acksS = since(t0);
    await until(`case ${name}: devices back`, () => sim.counters.connected >= fleet, 600_000);
    const backS = since(t0);
    await until(`case ${name}: a leader`, () => alive().some((r) => r.leading), 120_000);
    await restore(); // a killed replica is replaced (as an orchestrator would), outside the timings
    await until(
      `case ${name}: the rollout to finish`,
      async () => (await rollout()).status !== 'running',
      3_600_000,
    );
    const { gapS, mostLeaders } = leaders.stop();
    const done = await rollout();
    const after = await auditTelemetry(database, ledgers());
    log(
      `case ${i + 1} ${name}: rollout ${done.status} ${done.counts.succeeded}/${fleet} in ${since(started)} s; ` +
        `no leader for ${gapS} s (most leaders at once ${mostLeaders}); acks after ${acksS} s; ` +
        `lost ${after.lost}, stored twice ${after.storedTwice} (load ${load()})`,
    );
    rows.push([
      name,
      `${doneBefore}/${fleet}`,
      `${done.status} ${done.counts.succeeded}/${fleet}`,
      since(started),
      disruptionS,
      gapS,
      mostLeaders,
      acksS,
      backS,
      after.sent - before.sent,
      after.acked - before.acked,
      after.storedRows - before.storedRows,
      after.lost,
      after.storedTwice,
      load(),
    ]);
  }
  sim.stop();
  const result = await sim.done;
  const final = await auditTelemetry(database, ledgers());
  finalRow = [
    result.recordsSent,
    final.acked,
    result.recordsUnacked,
    final.storedRows,
    final.lost,
    final.storedTwice,
    alive().length,
    load(),
  ];
  log(`final: ${JSON.stringify(final)}; unacked at the end ${result.recordsUnacked}`);
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
  `\`npx tsx scripts/bench/replica-restarts.ts --devices ${devices} --wave ${wave} --interval ${intervalS} --cases ${args.cases}\` — ${new Date().toISOString().slice(0, 10)}, ${machineLine()}. Two replicas (\`cloud start --database … --mqtt-url …\`), Mosquitto 2 (no persistence), PostgreSQL 15 and the simulator share these cores with other work (1-minute load average in the last column). ${fleetSize} of ${devices} devices enrolled and connected. Every device sends one record every ${intervalS} s throughout (resent after 10 s without an ack). Each case is its own rollout of a 204 KB model in waves of ${wave}, disrupted once its first wave is done: \`kill -9\` of the leader, \`kill -9\` of a follower (each replaced by a new replica once the timings are taken), Mosquitto stopped and started (sessions and retained messages gone), the PostgreSQL server restarted. "no leader" is the longest time no live replica led (sampled every 100 ms); "lost" counts records the devices had acknowledged that are not stored, and "stored twice" rows beyond the first per (device, seq), record by record over the whole run so far.`,
  '',
  markdownTable(
    [
      'case',
      'rollout done at disruption',
      'rollout outcome',
      'rollout s',
      'disruption s',
      'no leader s',
      'most leaders at once',
      'acks again after s',
      'all devices back after s',
      'records sent',
      'acked',
      'stored',
      'lost',
      'stored twice',
      'load',
    ],
    rows,
  ),
  '',
  'Whole run, after the devices drained their outboxes:',
  '',
  markdownTable(
    [
      'records sent',
      'acked',
      'unacked at the end',
      'stored',
      'lost',
      'stored twice',
      'replicas alive',
      'load',
    ],
    [finalRow],
  ),
].join('\n');
if (args.write)
  await writeBenchmarkSection('Replicas across kill -9, Mosquitto and PostgreSQL restarts (issue 17)', body);
process.stdout.write(`${body}\n`);
process.exit(0);
