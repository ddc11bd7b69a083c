/**
 * Telemetry through Mosquitto into 1, 2 and 3 cloud replicas on PostgreSQL, then kill -9 of
 * the leader during ingest (issue 17).
 *
 *   nice -n 10 npx tsx scripts/bench/scale-ingest.ts [--devices 2000] [--seconds 30] [--rate 5]
 *     [--interval 1] [--replicas 1,2,3] [--no-failover] [--database postgres://fleetml:fleetml@127.0.0.1:5432/fleetml_test]
 *
 * The devices are enrolled once, through the real protocol (the simulator's enrollment, 50 at a
 * time). Each round then starts N `fleetml cloud start --database … --mqtt-url …` processes on
 * one data directory, connects every simulated device (each on its own MQTT connection), lets
 * each send a batch of `rate` records every `interval` seconds (jittered), and reports records stored per second
 * (PostgreSQL count over the steady part of the round) and whether every record sent was
 * stored exactly once. Everything shares this machine's cores: the simulator, Mosquitto,
 * PostgreSQL and the replicas; the load average is recorded with each round.
 */
import { randomBytes } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { enrollSimulated, type SimIdentity } from '../../cloud/simulator/enroll.js';
import { type SimulationResult, startSimulation } from '../../cloud/simulator/fleet.js';
import { BenchReplica, startBenchMosquitto } from './_replicas.js';
import { machineLine, markdownTable, writeBenchmarkSection } from './report.js';

const { values: args } = parseArgs({
  options: {
    devices: { type: 'string', default: '2000' },
    seconds: { type: 'string', default: '30' },
    rate: { type: 'string', default: '5' },
    interval: { type: 'string', default: '1' },
    replicas: { type: 'string', default: '1,2,3' },
    database: { type: 'string', default: 'postgres://fleetml:fleetml@127.0.0.1:5432/fleetml_test' },
    'no-failover': { type: 'boolean', default: false },
    'no-write': { type: 'boolean', default: false },
  },
});
const devices = Number(args.devices);
const seconds = Number(args.seconds);
const rate = Number(args.rate);
const intervalS = Number(args.interval);
const offered = Math.round((devices * rate) / intervalS);
const replicaCounts = args.replicas.split(',').map(Number);
const log = (msg: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const load = () => loadavg()[0].toFixed(1);

const dir = await mkdtemp(join(tmpdir(), 'fleetml-bench-scale-'));
const mosquitto = await startBenchMosquitto(dir);
const dbName = `fleetml_bench_${randomBytes(3).toString('hex')}`;
const admin = new pg.Client({ connectionString: args.database });
await admin.connect();
await admin.query(`CREATE DATABASE ${dbName}`);
const dbUrl = new URL(args.database);
dbUrl.pathname = `/${dbName}`;
const database = dbUrl.toString();
const counter = new pg.Client({ connectionString: database });
const counts = async () => {
  const { rows } = await counter.query<{ n: string; distinct: string }>(
    `SELECT count(*) n, count(DISTINCT (device_id, seq)) "distinct" FROM telemetry`,
  );
  return { stored: Number(rows[0].n), duplicates: Number(rows[0].n) - Number(rows[0].distinct) };
};

const replicasUp: BenchReplica[] = [];
const startReplicas = async (n: number) => {
  const list: BenchReplica[] = [];
  for (let i = 0; i < n; i++) {
    const replica = new BenchReplica(join(dir, 'cloud'), mosquitto.url, database);
    replicasUp.push(replica);
    await replica.ready();
    list.push(replica);
  }
  return list;
};

/** Every device enrolled once, through the real protocol, before any measurement. */
async function enrollAll(replica: BenchReplica): Promise<SimIdentity[]> {
  const token = await replica.enrollToken(devices);
  const identities: SimIdentity[] = new Array(devices);
  const abort = new AbortController();
  setMaxListeners(0, abort.signal); // one waiter per enrollment in flight
  let next = 0;
  let done = 0;
  const started = performance.now();
  const progress = setInterval(() => log(`enrolled ${done}/${devices} (load ${load()})`), 10_000);
  await Promise.all(
    Array.from({ length: Math.min(50, devices) }, async () => {
      while (next < devices) {
        const index = next++;
        identities[index] = await enrollSimulated({
          url: mosquitto.url,
          token,
          hostname: `bench-${index}`,
          retryS: 120,
          signal: abort.signal,
        });
        done++;
      }
    }),
  );
  clearInterval(progress);
  log(`enrolled ${devices} devices in ${((performance.now() - started) / 1000).toFixed(0)} s`);
  return identities;
}

/** One simulated run of every device; resolves once they are all connected (or 10 min passed). */
async function connectAll(
  identities: SimIdentity[],
  o: { durationS: number; batch: number; resendS?: number },
) {
  const started = performance.now();
  const sim = startSimulation(
    {
      cloud: mosquitto.url,
      enrollToken: 'enrolled-already',
      devices,
      durationS: o.durationS,
      telemetryIntervalS: intervalS,
      recordsPerBatch: o.batch,
      rampS: Math.max(5, devices / 500),
      enrollConcurrency: 200,
      resendAfterS: o.resendS ?? 15,
      drainS: 60,
      namePrefix: 'bench',
    },
    undefined,
    identities,
  );
  let lastLog = performance.now();
  while (sim.counters.connected < devices && performance.now() - started < 600_000) {
    await sleep(500);
    if (performance.now() - lastLog > 10_000) {
      lastLog = performance.now();
      log(`connected ${sim.counters.connected}/${devices} (load ${load()})`);
    }
  }
  const connectS = (performance.now() - started) / 1000;
  log(`connected ${sim.counters.connected}/${devices} after ${connectS.toFixed(0)} s`);
  return { sim, connectS };
}

const integrity = (result: SimulationResult, storedInRound: number) => ({
  // Every acknowledged record must be stored; unacknowledged ones may or may not be (lost ack).
  lost: Math.max(0, result.recordsAcked - storedInRound),
  extra: Math.max(0, storedInRound - result.recordsSent),
});

const rows: Array<Array<string | number>> = [];
let failover: Array<Array<string | number>> = [];
try {
  let identities: SimIdentity[] = [];
  for (const n of replicaCounts) {
    const replicas = await startReplicas(n);
    if (identities.length === 0) {
      await counter.connect(); // the schema exists once a replica is up
      identities = await enrollAll(replicas[0]);
    }
    const before = await counts();
    const { sim, connectS } = await connectAll(identities, { durationS: 3600, batch: rate });
    await sleep(5000); // steady state
    const c0 = (await counts()).stored;
    const t0 = performance.now();
    await sleep(seconds * 1000);
    const c1 = (await counts()).stored;
    const storedPerS = (c1 - c0) / ((performance.now() - t0) / 1000);
    const loadAtEnd = load();
    log(
      `${n} replica(s): ${storedPerS.toFixed(0)} records/s stored (offered ${offered}/s), load ${loadAtEnd}`,
    );
    sim.stop();
    const result = await sim.done;
    for (const r of replicas) await r.kill('SIGTERM');
    const after = await counts();
    const check = integrity(result, after.stored - before.stored);
    rows.push([
      n,
      `${result.online}/${devices}`,
      connectS.toFixed(0),
      offered,
      Math.round(storedPerS),
      result.recordsSent,
      result.recordsAcked,
      after.stored - before.stored,
      check.lost,
      after.duplicates,
      loadAtEnd,
    ]);
  }

  if (!args['no-failover']) failover = await killLeaderDuringIngest(identities);
} finally {
  for (const r of replicasUp) await r.kill('SIGKILL');
  await counter.end().catch(() => {});
  await mosquitto.stop();
  await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  await admin.end();
  await rm(dir, { recursive: true, force: true });
}

/** kill -9 of the leader during ingest (2 replicas, batches of 1 record). */
async function killLeaderDuringIngest(identities: SimIdentity[]): Promise<Array<Array<string | number>>> {
  const replicas = await startReplicas(2);
  const before = await counts();
  const { sim } = await connectAll(identities, { durationS: 3600, batch: 1, resendS: 5 });
  await sleep(10_000);
  const leader = replicas.find((r) => r.leading);
  const follower = replicas.find((r) => r !== leader)!;
  const killedAt = performance.now();
  await leader?.kill('SIGKILL');
  while (!follower.leading && performance.now() - killedAt < 30_000) await sleep(20);
  const takeoverS = (performance.now() - killedAt) / 1000;
  const tookOver = follower.leading; // read now: a stopping replica logs 'following'
  await sleep(20_000); // ingest goes on through the survivor
  sim.stop();
  const result = await sim.done;
  await follower.kill('SIGTERM');
  const after = await counts();
  const check = integrity(result, after.stored - before.stored);
  log(
    `failover: takeover ${takeoverS.toFixed(1)} s, sent ${result.recordsSent}, stored ${after.stored - before.stored}`,
  );
  return [
    [
      leader ? 'yes' : 'no leader found',
      tookOver ? takeoverS.toFixed(1) : `> ${takeoverS.toFixed(0)} (no takeover)`,
      `${result.online}/${devices}`,
      result.recordsSent,
      result.recordsAcked,
      after.stored - before.stored,
      check.lost,
      after.duplicates,
      load(),
    ],
  ];
}

const body = [
  `\`npx tsx scripts/bench/scale-ingest.ts --devices ${devices} --seconds ${seconds} --rate ${rate} --interval ${intervalS} --replicas ${args.replicas}\` — ${new Date().toISOString().slice(0, 10)}, ${machineLine()}. Simulator, Mosquitto 2, PostgreSQL 15 and the replicas all share these 2 cores (1-minute load average at the end of each round in the last column, the benchmark's own processes included). Each device sends a batch of ${rate} records every ${intervalS} s, jittered (offered records/s); stored/s is the PostgreSQL count over ${seconds} s of steady state. "stored" counts the records of the whole round, "lost" the acknowledged records not stored, "stored twice" rows with a repeated (device, seq) in the whole table.`,
  '',
  markdownTable(
    [
      'replicas',
      'devices online',
      'connect s',
      'offered records/s',
      'stored records/s',
      'sent',
      'acked',
      'stored',
      'lost',
      'stored twice',
      'load',
    ],
    rows,
  ),
  ...(failover.length
    ? [
        '',
        `kill -9 of the leader during ingest (2 replicas, batches of 1 record every ${intervalS} s, resend after 5 s without ack):`,
        '',
        markdownTable(
          [
            'leader killed',
            'takeover s',
            'devices online',
            'sent',
            'acked',
            'stored',
            'lost',
            'stored twice',
            'load',
          ],
          failover,
        ),
      ]
    : []),
].join('\n');
if (!args['no-write'])
  await writeBenchmarkSection('Scale-out: replicas on Mosquitto and PostgreSQL (issue 17)', body);
process.stdout.write(`${body}\n`);
process.exit(0);
