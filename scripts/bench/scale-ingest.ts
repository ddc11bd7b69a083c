/**
 * Telemetry through Mosquitto into 1, 2 and 3 cloud replicas on PostgreSQL, then kill -9 of
 * the leader during ingest (issue 17).
 *
 *   npx tsx scripts/bench/scale-ingest.ts [--devices 2000] [--seconds 30] [--rate 5] [--replicas 1,2,3]
 *     [--database postgres://fleetml:fleetml@127.0.0.1:5432/fleetml_test]
 *
 * One process runs the simulated devices (fleetml's simulator: each its own MQTT connection,
 * enrolled once through the real protocol), offering `devices × rate` records per second in
 * batches of `rate` records every second. Each round starts N `fleetml cloud start --database
 * … --mqtt-url …` processes on one data directory and reports records stored per second
 * (PostgreSQL count over the steady part of the round). Everything shares this machine's
 * cores: the simulator, Mosquitto, PostgreSQL and the replicas.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import type { SimIdentity } from '../../cloud/simulator/enroll.js';
import { startSimulation } from '../../cloud/simulator/fleet.js';
import { machineLine, markdownTable, writeBenchmarkSection } from './report.js';

const { values: args } = parseArgs({
  options: {
    devices: { type: 'string', default: '2000' },
    seconds: { type: 'string', default: '30' },
    rate: { type: 'string', default: '5' },
    replicas: { type: 'string', default: '1,2,3' },
    database: { type: 'string', default: 'postgres://fleetml:fleetml@127.0.0.1:5432/fleetml_test' },
    'no-write': { type: 'boolean', default: false },
  },
});
const devices = Number(args.devices);
const seconds = Number(args.seconds);
const rate = Number(args.rate);
const replicaCounts = args.replicas.split(',').map(Number);
const ROOT = resolve(import.meta.dirname, '../..');
const log = (msg: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

class Replica {
  readonly lines: string[] = [];
  readonly child: ChildProcess;
  constructor(dataDir: string, mqttUrl: string, database: string, httpPort: number) {
    this.child = spawn(
      process.execPath,
      [
        join(ROOT, 'bin/fleetml.mjs'),
        'cloud',
        'start',
        '--data-dir',
        dataDir,
        '--http-port',
        String(httpPort),
        '--mqtt-url',
        mqttUrl,
        '--database',
        database,
      ],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FLEETML_LOG_LEVEL: 'info' } },
    );
    let buffered = '';
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString();
      const parts = buffered.split('\n');
      buffered = parts.pop() ?? '';
      this.lines.push(
        ...parts.filter((l) =>
          l.startsWith('{"level":30') ? /"msg":"(leading|following)"/.test(l) : !l.startsWith('{'),
        ),
      );
    };
    this.child.stdout!.on('data', onData);
    this.child.stderr!.on('data', onData);
  }
  get leading(): boolean {
    const last = this.lines.filter((l) => /"msg":"(leading|following)"/.test(l)).pop();
    return last?.includes('"leading"') ?? false;
  }
  async ready(): Promise<void> {
    for (let i = 0; i < 1200 && !this.lines.some((l) => l.startsWith('token: ')); i++) await sleep(100);
    if (!this.lines.some((l) => l.startsWith('token: ')))
      throw new Error(`replica did not start:\n${this.lines.join('\n')}`);
  }
  get httpUrl(): string {
    return this.lines
      .find((l) => l.startsWith('console: '))!
      .slice(9)
      .split('#')[0]
      .replace('localhost', '127.0.0.1');
  }
  async kill(signal: NodeJS.Signals): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill(signal);
    await new Promise((r) => this.child.once('exit', r));
  }
}

const dir = await mkdtemp(join(tmpdir(), 'fleetml-bench-scale-'));
const mqttPort = await freePort();
await writeFile(
  join(dir, 'mosquitto.conf'),
  [
    `listener ${mqttPort} 127.0.0.1`,
    'allow_anonymous true',
    'persistence false',
    'max_queued_messages 100000',
    'max_inflight_messages 0',
    '',
  ].join('\n'),
);
const mosquitto = spawn('/usr/sbin/mosquitto', ['-c', join(dir, 'mosquitto.conf')], { stdio: 'ignore' });
const mqttUrl = `mqtt://127.0.0.1:${mqttPort}`;
const dbName = `fleetml_bench_${randomBytes(3).toString('hex')}`;
const admin = new pg.Client({ connectionString: args.database });
await admin.connect();
await admin.query(`CREATE DATABASE ${dbName}`);
const dbUrl = new URL(args.database);
dbUrl.pathname = `/${dbName}`;
const database = dbUrl.toString();
const counter = new pg.Client({ connectionString: database });
const stored = async () =>
  Number((await counter.query<{ n: string }>('SELECT count(*) n FROM telemetry')).rows[0].n);

const startReplicas = async (n: number) => {
  const list: Replica[] = [];
  for (let i = 0; i < n; i++) {
    const r = new Replica(join(dir, 'cloud'), mqttUrl, database, await freePort());
    await r.ready();
    list.push(r);
    if (i === 0) await counter.connect().catch(() => {}); // the schema exists once the first replica is up
  }
  return list;
};

let identities: SimIdentity[] = [];
const rows: Array<Array<string | number>> = [];
let failover: Array<Array<string | number>> = [];
try {
  for (const n of replicaCounts) {
    const replicas = await startReplicas(n);
    let token = 'unused';
    if (identities.length === 0) {
      const adminToken = (await readFile(join(dir, 'cloud', 'admin-token'), 'utf8')).trim();
      const response = await fetch(`${replicas[0].httpUrl}/api/enroll-tokens`, {
        method: 'POST',
        headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({ uses: devices }),
      });
      token = ((await response.json()) as { token: string }).token;
    }
    const enrollStart = performance.now();
    const sim = startSimulation(
      {
        cloud: mqttUrl,
        enrollToken: token,
        devices,
        durationS: seconds + 30,
        telemetryIntervalS: 1,
        recordsPerBatch: rate,
        rampS: 10,
        enrollConcurrency: 50,
        drainS: 20,
        namePrefix: 'bench',
      },
      undefined,
      identities,
    );
    while (sim.counters.connected < devices && performance.now() - enrollStart < 300_000) await sleep(500);
    const connectS = (performance.now() - enrollStart) / 1000;
    log(
      `${n} replica(s): ${sim.counters.connected}/${devices} devices connected after ${connectS.toFixed(0)} s`,
    );
    await sleep(5000); // steady state
    const c0 = await stored();
    const t0 = performance.now();
    await sleep(seconds * 1000);
    const c1 = await stored();
    const elapsed = (performance.now() - t0) / 1000;
    const storedPerS = (c1 - c0) / elapsed;
    log(`${n} replica(s): ${storedPerS.toFixed(0)} records/s stored (offered ${devices * rate}/s)`);
    sim.stop();
    const result = await sim.done;
    if (identities.length === 0) identities = sim.devices.map((d) => d.identity);
    rows.push([
      n,
      devices,
      devices * rate,
      Math.round(storedPerS),
      result.recordsSent,
      result.recordsAcked,
      result.recordsResent,
      loadavg()[0].toFixed(1),
    ]);
    for (const r of replicas) await r.kill('SIGTERM');
  }

  // kill -9 of the leader during ingest, 2 replicas.
  const replicas = await startReplicas(2);
  const before = await stored();
  const sim = startSimulation(
    {
      cloud: mqttUrl,
      enrollToken: 'unused',
      devices,
      durationS: 40,
      telemetryIntervalS: 1,
      recordsPerBatch: 1,
      rampS: 5,
      enrollConcurrency: 50,
      resendAfterS: 5,
      drainS: 60,
      namePrefix: 'bench',
    },
    undefined,
    identities,
  );
  await sleep(15_000);
  const leader = replicas.find((r) => r.leading);
  const follower = replicas.find((r) => r !== leader)!;
  const killedAt = performance.now();
  await leader?.kill('SIGKILL');
  while (!follower.leading && performance.now() - killedAt < 30_000) await sleep(20);
  const takeoverS = (performance.now() - killedAt) / 1000;
  const result = await sim.done;
  const { rows: check } = await counter.query<{ n: string; distinct: string }>(
    `SELECT count(*) n, count(DISTINCT (device_id, seq)) "distinct" FROM telemetry`,
  );
  const n = Number(check[0].n) - before;
  failover = [
    [
      leader ? 'yes' : 'no leader found',
      follower.leading ? takeoverS.toFixed(1) : `> ${takeoverS.toFixed(0)} (no takeover)`,
      result.recordsSent,
      result.recordsAcked,
      result.recordsSent - n,
      Number(check[0].n) - Number(check[0].distinct),
    ],
  ];
  log(`failover: takeover ${takeoverS.toFixed(1)} s, sent ${result.recordsSent}, stored ${n}`);
  await follower.kill('SIGTERM');
} finally {
  await counter.end().catch(() => {});
  mosquitto.kill('SIGTERM');
  await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  await admin.end();
  await rm(dir, { recursive: true, force: true });
}

const body = [
  `\`npx tsx scripts/bench/scale-ingest.ts --devices ${devices} --seconds ${seconds} --rate ${rate}\` — ${new Date().toISOString().slice(0, 10)}, ${machineLine()}. Simulator, Mosquitto 2, PostgreSQL 15 and the replicas all share these 2 cores (and the machine was shared with other work: load average in the last column).`,
  '',
  markdownTable(
    ['replicas', 'devices', 'offered records/s', 'stored records/s', 'sent', 'acked', 'resent', 'load'],
    rows,
  ),
  '',
  'kill -9 of the leader during ingest (2 replicas, 1 record/s per device, resend after 5 s without ack):',
  '',
  markdownTable(['leader killed', 'takeover s', 'records sent', 'acked', 'lost', 'stored twice'], failover),
].join('\n');
if (!args['no-write'])
  await writeBenchmarkSection('Scale-out: replicas on Mosquitto and PostgreSQL (issue 17)', body);
process.stdout.write(`${body}\n`);
process.exit(0);
