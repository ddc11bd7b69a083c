/**
 * Agent idle cost: RSS and CPU of a real `fleetml agent start` process (enrolled, connected to
 * an embedded aedes broker, no model, telemetry every 10 s), read from /proc over a window.
 * Measured twice: the esbuild bundle devices run (dist/fleetml-agent.mjs on plain node, what
 * scripts/install-agent.sh installs) and `node bin/fleetml.mjs` through the tsx loader.
 * Baseline in the same run: a bare `node` process that only keeps a timer (the floor any Node
 * daemon pays). Targets: RSS <= 80 MB, CPU <= 1 % of one core.
 * Usage: npx tsx scripts/bench/agent-idle.ts [--seconds 30] [--json]
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Aedes } from 'aedes';
import mqtt from 'mqtt';
import { enrollReplyTopic, parseTopic } from '../../shared/protocol/index.js';

const args = process.argv.slice(2);
const i = args.indexOf('--seconds');
const SECONDS = i >= 0 ? Number(args[i + 1]) : 30;
const ROOT = resolve(import.meta.dirname, '../..');
const TICKS_PER_S = 100; // USER_HZ on Linux

const broker = await Aedes.createBroker();
const server = net.createServer(broker.handle);
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
const url = `mqtt://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
const cloud = await mqtt.connectAsync(url, { clientId: 'idle-cloud' });
await cloud.subscribeAsync('fleetml/v1/enroll/+/req');
cloud.on('message', (topic) => {
  const t = parseTopic(topic);
  if (t?.kind !== 'enroll') return;
  const reply = {
    v: 1,
    ok: true,
    deviceId: 'idle-dev',
    secret: randomBytes(16).toString('hex'),
    profile: null,
  };
  void cloud.publishAsync(enrollReplyTopic(t.requestId), JSON.stringify(reply), { qos: 1 });
});

async function procStats(pid: number): Promise<{ rssBytes: number; cpuTicks: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  const stat = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1].split(' ');
  // utime, stime are fields 14 and 15 (1-based) = indexes 11, 12 after the command name.
  return { rssBytes: rssKb * 1024, cpuTicks: Number(stat[11]) + Number(stat[12]) };
}

async function measure(child: ChildProcess, settleMs: number) {
  await new Promise((r) => setTimeout(r, settleMs));
  const a = await procStats(child.pid!);
  let peakRss = a.rssBytes;
  const samples: number[] = [];
  for (let s = 0; s < SECONDS; s++) {
    await new Promise((r) => setTimeout(r, 1000));
    const now = await procStats(child.pid!);
    samples.push(now.rssBytes);
    peakRss = Math.max(peakRss, now.rssBytes);
  }
  const b = await procStats(child.pid!);
  const cpuPercent = ((b.cpuTicks - a.cpuTicks) / TICKS_PER_S / SECONDS) * 100;
  const rss = samples.sort((x, y) => x - y)[Math.floor(samples.length / 2)];
  return { rssMB: rss / 1048576, peakRssMB: peakRss / 1048576, cpuPercent };
}

execFileSync(join(ROOT, 'node_modules/.bin/esbuild'), [
  join(ROOT, 'agent/cli/daemon.ts'),
  '--bundle',
  '--platform=node',
  '--format=esm',
  '--target=node20',
  '--packages=external',
  `--outfile=${join(ROOT, 'dist/fleetml-agent.mjs')}`,
  '--log-level=warning',
]);

// What the systemd unit runs: a small young generation suits a mostly idle daemon.
const DEVICE_NODE_FLAGS = process.env.FLEETML_BENCH_NODE_FLAGS?.split(' ') ?? [
  '--max-semi-space-size=1',
  '--max-old-space-size=48',
  '--single-threaded-gc',
  '--v8-pool-size=1',
];

async function runAgent(entry: string, deviceDir: string, nodeFlags: string[] = []) {
  const child = spawn(
    'node',
    [
      ...nodeFlags,
      entry,
      'agent',
      'start',
      '--cloud',
      url,
      '--enroll-token',
      'idle-token-1',
      '--data-dir',
      deviceDir,
      '--log-level',
      'warn',
    ],
    { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] },
  );
  return child;
}

const dirs = [await mkdtemp(join(tmpdir(), 'fleetml-idle-')), await mkdtemp(join(tmpdir(), 'fleetml-idle-'))];
const bundled = await runAgent(join(ROOT, 'dist/fleetml-agent.mjs'), dirs[0], DEVICE_NODE_FLAGS);
const viaTsx = await runAgent(join(ROOT, 'bin/fleetml.mjs'), dirs[1]);
const bare = spawn('node', ['-e', 'setInterval(() => {}, 10000)'], { stdio: 'ignore' });
const [agentStats, tsxStats, bareStats] = await Promise.all([
  measure(bundled, 8000),
  measure(viaTsx, 8000),
  measure(bare, 8000),
]);
for (const c of [bundled, viaTsx, bare]) c.kill('SIGTERM');
await Promise.all([bundled, viaTsx].map((c) => new Promise((r) => c.once('exit', r))));

const round = (v: number, d = 1) => Math.round(v * 10 ** d) / 10 ** d;
const result = {
  seconds: SECONDS,
  nodeFlags: DEVICE_NODE_FLAGS.join(' '),
  agentRssMB: round(agentStats.rssMB),
  agentPeakRssMB: round(agentStats.peakRssMB),
  agentCpuPercentOfCore: round(agentStats.cpuPercent, 2),
  tsxAgentRssMB: round(tsxStats.rssMB),
  tsxAgentCpuPercentOfCore: round(tsxStats.cpuPercent, 2),
  bareNodeRssMB: round(bareStats.rssMB),
  bareNodeCpuPercentOfCore: round(bareStats.cpuPercent, 2),
  rssRatioToBareNode: round(agentStats.rssMB / bareStats.rssMB, 2),
  pass: agentStats.peakRssMB <= 80 && agentStats.cpuPercent <= 1,
};
if (args.includes('--json')) process.stdout.write(`${JSON.stringify(result)}\n`);
else console.table(result);
await cloud.endAsync();
server.close();
broker.close();
for (const d of dirs) await rm(d, { recursive: true, force: true });
