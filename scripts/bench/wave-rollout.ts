/**
 * A rollout in waves to N simulated devices (issue 17): "a rollout with waves to 10,000
 * simulated devices completes".
 *
 *   nice -n 10 npx tsx scripts/bench/wave-rollout.ts [--devices 10000] [--canary 1] [--wave-size 2000]
 *     [--interval 60] [--database postgres://fleetml:fleetml@127.0.0.1:5432/fleetml_test] [--no-write]
 *     [--cloud-log FILE]
 *
 * One `fleetml cloud start` process: the default shape (embedded broker over mqtts, SQLite), or
 * with --database a replica on PostgreSQL behind Mosquitto. `fleetml simulate`'s devices (this
 * process, one MQTT connection each) enroll through the real protocol, connect and report
 * telemetry every --interval seconds; then one rollout of the sample model (cloud/samples,
 * 204 KB: 4 blocks) to all of them, with a canary wave and waves of --wave-size, each device
 * fetching its blocks, reporting its states and a benchmark. Recorded: time per wave and in
 * total, devices succeeded and failed, the cloud's peak resident memory and the load average.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { startSimulation } from '../../cloud/simulator/fleet.js';
import { startBenchMosquitto } from './_replicas.js';
import { finishRun, interruption, type TeardownStep } from './_teardown.js';
import { CloudProcess } from './_wave-cloud.js';
import { type RolloutDetail, waveRows } from './_wave-report.js';
import { machineLine, markdownTable, writeBenchmarkSection } from './report.js';

const { values: args } = parseArgs({
  options: {
    devices: { type: 'string', default: '10000' },
    canary: { type: 'string', default: '1' },
    'wave-size': { type: 'string', default: '2000' },
    interval: { type: 'string', default: '60' },
    'enroll-concurrency': { type: 'string', default: '50' },
    database: { type: 'string' },
    'timeout-min': { type: 'string', default: '60' },
    'no-write': { type: 'boolean', default: false },
    /** Every line the cloud prints (it logs at warn) is appended to this file as well. */
    'cloud-log': { type: 'string' },
  },
});
const devices = Number(args.devices);
const log = (msg: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const MiB = 1024 * 1024;
const SAMPLE = resolve(import.meta.dirname, '../../cloud/samples/mnist-mlp.onnx');

const dir = await mkdtemp(join(tmpdir(), 'fleetml-bench-waves-'));
// The cloud notes itself for other commands under $XDG_STATE_HOME: keep that in the temp dir.
const env = { ...process.env, XDG_STATE_HOME: join(dir, 'state') };
/** Undone in reverse order at the end, each reported if it fails (scripts/bench/_teardown.ts). */
const undo: TeardownStep[] = [];
const loads: number[] = [];
let peakRss = 0;
let cloud: CloudProcess;
let runError: unknown;
const interrupted = interruption();
try {
  cloud = await Promise.race([startBenchCloud(), interrupted]);
  const sampler = setInterval(async () => {
    loads.push(loadavg()[0]);
    peakRss = Math.max(peakRss, (await cloud.memory().catch(() => ({ rss: 0 }))).rss);
  }, 1000);
  undo.push(['stop sampling', async () => clearInterval(sampler)]);
  await Promise.race([run(), interrupted]);
} catch (error) {
  runError = error;
}
await finishRun(runError, [
  ...undo.reverse(),
  ['remove the temporary directory', () => rm(dir, { recursive: true, force: true })],
]);

/** The cloud: the embedded default, or a replica on PostgreSQL behind Mosquitto. */
async function startBenchCloud(): Promise<CloudProcess> {
  const common = ['--enrollments-per-minute', String(Math.max(30, devices * 2)), '--job-workers', '0'];
  if (!args.database) return startCloud(['--mqtt-port', '0', ...common]);
  const mosquitto = await startBenchMosquitto(dir);
  undo.push(['stop Mosquitto', mosquitto.stop]);
  const dbName = `fleetml_bench_${randomBytes(3).toString('hex')}`;
  const admin = new pg.Client({ connectionString: args.database });
  await admin.connect();
  undo.push(['close the admin connection', () => admin.end()]);
  await admin.query(`CREATE DATABASE ${dbName}`);
  // Runs after the cloud stopped (undo runs in reverse); FORCE ends any session it left.
  undo.push([`drop database ${dbName}`, () => admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`)]);
  const url = new URL(args.database);
  url.pathname = `/${dbName}`;
  return startCloud(['--mqtt-url', mosquitto.url, '--database', url.toString(), ...common]);
}

async function startCloud(flags: string[]): Promise<CloudProcess> {
  const c = new CloudProcess(join(dir, 'cloud'), flags, env, args['cloud-log']);
  undo.push(['stop the cloud', () => c.stop()]);
  await c.ready();
  return c;
}

async function run(): Promise<void> {
  const shape = args.database
    ? 'replica on PostgreSQL 15 behind Mosquitto 2'
    : 'embedded broker (mqtts), SQLite';
  log(`cloud up (${shape}) at ${cloud.httpUrl}`);
  const token = (await cloud.api<{ token: string }>('POST', '/api/enroll-tokens', { uses: devices })).body
    .token;
  const connectStarted = performance.now();
  const sim = startSimulation({
    cloud: cloud.brokerUrl,
    caPem: await cloud.caPem(),
    enrollToken: token,
    devices,
    durationS: 6 * 3600,
    telemetryIntervalS: Number(args.interval),
    rampS: Math.max(5, devices / 100),
    enrollConcurrency: Number(args['enroll-concurrency']),
    enrollRetryS: 30,
    namePrefix: 'wave',
  });
  undo.push([
    'stop the simulation',
    async () => {
      sim.stop();
      await sim.done;
    },
  ]);
  let lastLog = 0;
  const settled = () => {
    const c = sim.counters;
    return c.connected === devices || (c.enrolled + c.enrollFailed === devices && c.connected === c.enrolled);
  };
  while (!settled()) {
    if (performance.now() - connectStarted > 3600_000)
      throw new Error('devices did not connect within an hour');
    await sleep(500);
    if (performance.now() - lastLog > 15_000) {
      lastLog = performance.now();
      const c = sim.counters;
      log(
        `enrolled ${c.enrolled} (${c.enrollFailed} failed), connected ${c.connected}/${devices} (load ${loadavg()[0].toFixed(1)})`,
      );
    }
  }
  const connectS = (performance.now() - connectStarted) / 1000;
  const connected = sim.counters.connected;
  log(`connected ${connected}/${devices} after ${connectS.toFixed(0)} s`);

  const model = await cloud.api<{ id: string }>(
    'POST',
    '/api/models?name=wave-mnist',
    await readFile(SAMPLE),
  );
  if (model.status !== 201) throw new Error(`model upload: ${model.status} ${JSON.stringify(model.body)}`);
  const policy = {
    canaryPercent: Number(args.canary),
    waveSize: Number(args['wave-size']),
    deviceTimeoutS: 1800,
  };
  const rolloutStarted = performance.now();
  const memoryBefore = await cloud.memory();
  const loadsBefore = loads.length;
  peakRss = 0;
  const created = await cloud.api<{ id: string }>('POST', '/api/rollouts', {
    model: model.body.id,
    devices: sim.devices.map((d) => d.identity.deviceId),
    policy,
  });
  if (created.status !== 201) throw new Error(`rollout: ${created.status} ${JSON.stringify(created.body)}`);
  const id = created.body.id;
  log(`rollout ${id} created in ${((performance.now() - rolloutStarted) / 1000).toFixed(1)} s`);
  const timeoutMs = Number(args['timeout-min']) * 60_000;
  let status = 'running';
  while (status === 'running' || status === 'paused') {
    if (performance.now() - rolloutStarted > timeoutMs) break;
    await sleep(2000);
    const list = await cloud.api<{
      rollouts: Array<{ id: string; status: string; currentWave: number; counts: Record<string, number> }>;
    }>('GET', '/api/rollouts');
    const r = list.body.rollouts.find((x) => x.id === id)!;
    status = r.status;
    if (performance.now() - lastLog > 15_000) {
      lastLog = performance.now();
      log(
        `wave ${r.currentWave}: ${JSON.stringify(r.counts)}; devices: ${sim.counters.connected} connected, ${sim.counters.blocksReceived} blocks, ${sim.counters.modelsActivated} activated (rss ${(peakRss / MiB).toFixed(0)} MiB, load ${loadavg()[0].toFixed(1)})`,
      );
    }
  }
  const totalS = (performance.now() - rolloutStarted) / 1000;
  const detail = (await cloud.api<RolloutDetail>('GET', `/api/rollouts/${id}`)).body;
  const memory = await cloud.memory();
  const rolloutLoads = loads.slice(loadsBefore);
  log(`rollout ${detail.status} after ${totalS.toFixed(0)} s: ${JSON.stringify(detail.counts)}`);
  const rows = waveRows(detail);
  const table = markdownTable(
    ['wave', 'devices', 'succeeded', 'failed', 'started at s', 'done at s', 'wave s'],
    rows.map((w) => [w.wave, w.devices, w.succeeded, w.failed, w.startS, w.doneS, w.durationS]),
  );
  const c = sim.counters;
  const summary = [
    `\`nice -n 10 npx tsx scripts/bench/wave-rollout.ts --devices ${devices} --canary ${args.canary} --wave-size ${args['wave-size']} --interval ${args.interval}${args.database ? ' --database …' : ''}\` — ${new Date().toISOString().slice(0, 10)}, ${machineLine()}.`,
    '',
    `Cloud: one \`fleetml cloud start\` process, ${shape}. ${devices} simulated devices in this process (one MQTT connection each, telemetry every ${args.interval} s), enrolled through the real protocol and connected in ${connectS.toFixed(0)} s (${connected}/${devices} online). One rollout of the sample model (204 KB, 4 blocks of 64 KiB) to all of them: canary ${args.canary} %, waves of ${args['wave-size']}. Times are seconds after the rollout was created; a wave starts when every device of the one before has finished.`,
    '',
    table,
    '',
    `Rollout **${detail.status}** in ${totalS.toFixed(0)} s: ${detail.counts.succeeded ?? 0} devices succeeded, ${devices - (detail.counts.succeeded ?? 0)} did not (${JSON.stringify(detail.counts)}). Simulator: ${c.modelsActivated} models activated, ${c.blocksReceived} blocks received, ${c.transferFailures} transfer failures.`,
    `Cloud resident memory: ${(memoryBefore.rss / MiB).toFixed(0)} MiB before the rollout, peak ${(Math.max(peakRss, memory.rss) / MiB).toFixed(0)} MiB during it (sampled each second), VmHWM ${(memory.peak / MiB).toFixed(0)} MiB over the whole run (enrollment included). Load average (1 min) during the rollout: ${Math.min(...rolloutLoads).toFixed(1)}–${Math.max(...rolloutLoads).toFixed(1)}, on 2 cores shared by the simulator, the cloud${args.database ? ', Mosquitto, PostgreSQL' : ''} and other work on the machine.`,
  ].join('\n');
  process.stdout.write(`${summary}\n`);
  if (cloud.problems.length > 0) log(`cloud warnings (last 5):\n${cloud.problems.slice(-5).join('\n')}`);
  if (!args['no-write']) {
    const title = `Rollout in waves to ${devices.toLocaleString('en')} simulated devices${args.database ? ', PostgreSQL' : ''} (issue 17)`;
    await writeBenchmarkSection(title, summary);
  }
}
