/**
 * Telemetry ingest through the embedded MQTT broker into SQLite (issue 6 target: >= 20,000
 * records/s sustained with 1,000 simulated devices, nothing lost).
 *
 *   npx tsx scripts/bench/ingest.ts [--devices 1000] [--connections 1000] [--batch 10]
 *                                   [--inflight 2] [--seconds 15] [--no-baseline]
 *
 * The cloud (startCloud: aedes broker, MQTT router, ingest queue, SQLite file in WAL mode) runs
 * in this process; the devices run in a child process (scripts/bench/_ingest-devices.ts), one
 * real MQTT connection per device by default. Every batch is acknowledged by the cloud after
 * its commit; at the end the stored rows are counted against the records sent.
 * Baseline, same run: one transaction per batch (ingestMaxRecords = 1) instead of group commit.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { hashSecret } from '../../cloud/fleet/identity/secrets.js';
import { DeviceRepository } from '../../cloud/fleet/inventory/devices.js';
import type { MonitoringOptions } from '../../cloud/fleet/monitoring/options.js';
import { inTransaction } from '../../cloud/fleet/store/kysely.js';
import { type CloudHandle, startCloud } from '../../cloud/main.js';
import { createLogger } from '../../shared/logger.js';
import { machineLine, markdownTable, writeBenchmarkSection } from './report.js';

const { values: args } = parseArgs({
  options: {
    devices: { type: 'string', default: '1000' },
    connections: { type: 'string' },
    batch: { type: 'string', default: '10' },
    /** Also run group commit with agents sending bigger batches (a backlog drain; the agent allows 100). */
    'large-batch': { type: 'string', default: '50' },
    inflight: { type: 'string', default: '2' },
    seconds: { type: 'string', default: '15' },
    'no-baseline': { type: 'boolean', default: false },
    'no-write': { type: 'boolean', default: false },
  },
});
const devices = Number(args.devices);
const connections = Number(args.connections ?? args.devices);
const hardware = {
  hostname: 'bench',
  arch: 'arm64',
  platform: 'linux',
  cpuModel: 'Cortex-A76',
  cpuCores: 4,
  memoryBytes: 8e9,
  gpu: null,
  executionProviders: ['cpu' as const],
  onnxruntimeVersion: '1.30.0',
  nodeVersion: process.version,
};

interface SimResult {
  connectMs: number;
  sentRecords: number;
  ackedRecords: number;
  uniqueRecords: number;
  unacked: number;
  resends: number;
  publishErrors: number;
  elapsedMs: number;
  sendingMs: number;
  ackP50Ms: number;
  ackP99Ms: number;
  cpuS: number;
}

function simulate(url: string, batch: string): Promise<SimResult> {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      new URL('./_ingest-devices.ts', import.meta.url).pathname,
      url,
      String(devices),
      String(connections),
      batch,
      args.inflight,
      String(Number(args.seconds) * 1000),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  child.stdout.on('data', (chunk) => (out += chunk));
  return new Promise((resolve, reject) => {
    child.on('exit', (code) =>
      code === 0
        ? resolve(JSON.parse(out.trim().split('\n').pop()!))
        : reject(new Error(`simulator exit ${code}`)),
    );
  });
}

async function run(label: string, monitoring: Partial<MonitoringOptions>, batch = args.batch) {
  const dir = await mkdtemp(join(tmpdir(), 'fleetml-bench-ingest-'));
  const cloud: CloudHandle = await startCloud({
    dataDir: dir,
    httpPort: 0,
    mqttPort: 0,
    logger: createLogger({ name: 'bench', level: 'error' }),
    monitoring,
  });
  const s = cloud.services;
  await inTransaction(s.fleet, async (tx) => {
    const repo = new DeviceRepository(tx);
    for (let i = 0; i < devices; i++) {
      const id = `bench-${String(i).padStart(4, '0')}`;
      await repo.create({
        id,
        name: id,
        secretHash: hashSecret(id),
        profile: i % 2 ? 'rpi4' : 'rpi5',
        hardware,
      });
      await repo.setOnline(id, true, new Date().toISOString());
    }
  });
  // Committed records per second, sampled by the cloud itself (timer lateness corrected).
  const samples: Array<{ t: number; added: number }> = [];
  const sampler = setInterval(
    () => samples.push({ t: performance.now(), added: s.monitor.ingest.stats.added }),
    1000,
  );
  process.stderr.write(`${label}: ${devices} devices over ${connections} connections, ${args.seconds} s…\n`);
  const cpuAtStart = process.cpuUsage();
  const sim = await simulate(cloud.mqttUrl, batch);
  const cpu = process.cpuUsage(cpuAtStart);
  const cloudCpuS = (cpu.user + cpu.system) / 1e6;
  clearInterval(sampler);
  s.monitor.ingest.flush();
  const stored = await s.telemetry.count();
  const rollupRecords = (
    s.db.prepare('SELECT sum(records) n FROM telemetry_rollup WHERE resolution = 60000').get() as {
      n: number;
    }
  ).n;
  const stats = { ...s.monitor.ingest.stats };
  await cloud.stop();
  await rm(dir, { recursive: true, force: true });
  // Steady state: from the first second with commits, minus that second (connect burst) and
  // the last two (the devices stop sending and the queue drains).
  const rates = samples.slice(1).map((x, i) => (x.added - samples[i].added) / ((x.t - samples[i].t) / 1000));
  const first = rates.findIndex((r) => r > 0);
  const steady = rates.slice(first + 1, Math.max(first + 2, rates.length - 2)).map(Math.round);
  const result = {
    label,
    batch,
    recordsPerS: sim.ackedRecords / (sim.elapsedMs / 1000),
    minSecond: Math.min(...steady),
    perSecond: steady,
    medianSecond: steady.slice().sort((a, b) => a - b)[Math.floor(steady.length / 2)],
    stored,
    rollupRecords,
    recordsPerCommit: stats.records / Math.max(1, stats.commits),
    commits: stats.commits,
    cloudCpuS,
    ...sim,
  };
  process.stderr.write(`${JSON.stringify(result)}\n`);
  return result;
}

const group = await run('group commit', {});
const baseline = args['no-baseline'] ? null : await run('per-batch transactions', { ingestMaxRecords: 1 });
const large = Number(args['large-batch']) > 0 ? await run('group commit', {}, args['large-batch']) : null;
const rows = [group, ...(baseline ? [baseline] : []), ...(large ? [large] : [])].map((r) => [
  r.label,
  r.batch,
  Math.round(r.recordsPerS),
  r.minSecond,
  r.medianSecond,
  r.recordsPerCommit.toFixed(1),
  r.ackP50Ms.toFixed(0),
  r.ackP99Ms.toFixed(0),
  `${r.stored} / ${r.uniqueRecords}`,
  r.resends,
  Math.round(r.stored / r.cloudCpuS),
  baseline && r.batch === baseline.batch ? (r.recordsPerS / baseline.recordsPerS).toFixed(2) : '—',
]);
const lost = group.uniqueRecords - group.stored;
const met = group.minSecond >= 20_000 && lost === 0 && group.rollupRecords === group.stored;
const body = `Command: \`npx tsx scripts/bench/ingest.ts --devices ${devices} --connections ${connections} --batch ${args.batch} --inflight ${args.inflight} --seconds ${args.seconds}\` — ${new Date().toISOString().slice(0, 10)} — ${machineLine()}, load average ${loadavg()[0].toFixed(1)} at the end (the 2 cores are shared with other jobs)

Cloud (startCloud: embedded aedes broker, MQTT router, ingest queue, SQLite file in WAL mode) in the benchmark
process; ${devices} simulated devices in a child process over ${connections} real MQTT connections${connections === devices ? ' (one per device)' : ' (device ids multiplexed over them)'}.
Each device sends batches of ${args.batch} records (${args['large-batch']} in the last row) at QoS 1, keeps at most ${args.inflight} batches unacknowledged, sends the
next on the cloud's ack (published only after the commit) and resends after 10 s without one. Records carry a latency
summary, temperature, CPU load and throttling bits; every stored record also updates its minute and hour rollup.

| mode | records per batch | records/s (acked) | slowest second | median second | records per commit | ack p50 ms | ack p99 ms | rows stored / records sent | resends | records per cloud CPU-second | ratio (records/s) |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
${rows.map((r) => `| ${r.join(' | ')} |`).join('\n')}

Target ≥ 20,000 records/s sustained (slowest whole second), nothing lost, with batches of ${args.batch}: **${met ? 'met' : 'not met'}**
(group commit: ${Math.round(group.recordsPerS)} records/s over ${(group.elapsedMs / 1000).toFixed(1)} s, slowest second ${group.minSecond}; ${lost} records lost; rollups count ${group.rollupRecords} records)${large ? `; with batches of ${large.batch}: ${large.minSecond >= 20_000 && large.stored === large.uniqueRecords ? 'met' : 'not met'} (${Math.round(large.recordsPerS)} records/s, slowest second ${large.minSecond}, ${large.uniqueRecords - large.stored} lost)` : ''}.
Connecting ${connections} clients took ${(group.connectMs / 1000).toFixed(1)} s (not counted). Per-second commits (group commit): ${group.perSecond.join(', ')}.
"Records per cloud CPU-second" divides the stored rows by the CPU time the cloud process used (broker, router, SQLite,
HTTP idle) during the run: what one dedicated core would sustain, independent of what else shares the machine.
Ack latency is queueing by design: ${devices} devices × ${args.inflight} batches in flight saturate the cloud (closed loop), so
by Little's law the ack wait is the in-flight records divided by the throughput.`;
if (!args['no-write']) await writeBenchmarkSection('Telemetry ingest (issue 6)', body);
process.stdout.write(`${body}\n`);
void markdownTable;
