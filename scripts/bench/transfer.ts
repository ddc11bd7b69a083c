/**
 * Block transfer through the embedded broker on loopback: a 20 MB artifact fetched by the
 * agent's Downloader (in its own process, as on a device) from the cloud's transfer server
 * (this process: embedded aedes, ArtifactStore), then the same with a forced disconnect at 50 %.
 * Baseline in the same run: the same bytes pushed as 64 KiB QoS 0 messages straight through
 * the same aedes to a subscriber in another process (no requests, no hashing, no disk): the
 * ceiling the transfer protocol works under. Trials interleave; medians are reported.
 * Usage: npx tsx scripts/bench/transfer.ts [--mb 20] [--window 64] [--trials 3] [--json]
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Aedes } from 'aedes';
import mqtt from 'mqtt';
import { Downloader } from '../../agent/transfer/downloader.js';
import { MqttTransport } from '../../agent/transport/mqtt.js';
import { LocalArtifactStore } from '../../cloud/fleet/delivery/local-artifacts.js';
import { createTransferServer } from '../../cloud/fleet/delivery/transfer-server.js';
import { createLogger } from '../../shared/logger.js';
import { CLOUD_SUBSCRIPTIONS, parseTopic } from '../../shared/protocol/index.js';

const args = process.argv.slice(2);
const arg = (name: string, fallback: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const argText = (name: string) => args[args.indexOf(`--${name}`) + 1];
const MB = arg('mb', 20);
const WINDOW = arg('window', 64);
const TRIALS = arg('trials', 3);
const BLOCK = 64 * 1024;
const logger = createLogger({ name: 'bench', level: 'warn', destination: process.stderr });

if (args.includes('--role')) {
  // Child process: the device side.
  const url = argText('url');
  const role = argText('role');
  const size = arg('size', 0);
  if (role === 'raw') {
    const sub = await mqtt.connectAsync(url, { clientId: `bench-raw-${process.pid}` });
    await sub.subscribeAsync('bench/raw', { qos: 0 });
    const total = Math.ceil(size / BLOCK);
    let got = 0;
    let t0 = 0;
    process.stdout.write('ready\n');
    await new Promise<void>((resolve) =>
      sub.on('message', () => {
        if (got++ === 0) t0 = performance.now();
        if (got === total) resolve();
      }),
    );
    // The first message starts the clock; scale to the whole artifact.
    const seconds = ((performance.now() - t0) / 1000) * (total / Math.max(1, total - 1));
    process.stdout.write(`${JSON.stringify({ mbPerS: size / 1048576 / seconds })}\n`);
    await sub.endAsync();
  } else {
    const deviceId = argText('device');
    const disconnectAt = arg('cut', -1);
    const dir = await mkdtemp(join(tmpdir(), 'fleetml-bench-dev-'));
    const transport = new MqttTransport({ url, clientId: `bench-${deviceId}`, logger });
    await transport.waitConnected(5000);
    const downloader = new Downloader({ transport, deviceId, dir, logger, windowBlocks: WINDOW });
    let cut = false;
    const t0 = performance.now();
    const { stats } = await downloader.download(
      { sha256: argText('sha'), size, blockSize: BLOCK },
      (fraction) => {
        if (disconnectAt > 0 && !cut && fraction >= disconnectAt) {
          cut = true;
          transport.dropConnection();
        }
      },
    );
    const seconds = (performance.now() - t0) / 1000;
    process.stdout.write(`${JSON.stringify({ mbPerS: size / 1048576 / seconds, stats })}\n`);
    await transport.close();
    await rm(dir, { recursive: true, force: true });
  }
  process.exit(0);
}

const broker = await Aedes.createBroker();
const server = net.createServer(broker.handle);
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const url = `mqtt://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
const dir = await mkdtemp(join(tmpdir(), 'fleetml-bench-transfer-'));
const store = new LocalArtifactStore(join(dir, 'store'));
const bytes = randomBytes(MB * 1024 * 1024);
const { sha256, size } = await store.put(bytes);

const cloud = await mqtt.connectAsync(url, { clientId: 'bench-cloud' });
const transfer = createTransferServer({
  store,
  logger,
  publish: (topic, payload) => cloud.publishAsync(topic, payload, { qos: 0 }).then(() => {}),
});
cloud.on('message', (topic, payload) => {
  const t = parseTopic(topic);
  if (t?.kind === 'device' && t.channel === 'transfer/req') void transfer.handleRequest(t.deviceId, payload);
});
await cloud.subscribeAsync(CLOUD_SUBSCRIPTIONS, { qos: 0 });

const self = fileURLToPath(import.meta.url);
function child(extra: string[], onReady?: () => void): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const proc = execFile(
      process.execPath,
      ['--import', 'tsx', self, '--url', url, '--size', String(size), '--window', String(WINDOW), ...extra],
      { maxBuffer: 1 << 20 },
      (error, stdout) => {
        if (error) return reject(error);
        resolve(JSON.parse(stdout.trim().split('\n').at(-1)!));
      },
    );
    if (onReady) {
      proc.stdout!.on('data', (d: Buffer) => {
        if (d.toString().includes('ready')) onReady();
      });
    }
  });
}

async function baseline(): Promise<number> {
  let release!: () => void;
  const ready = new Promise<void>((r) => (release = r));
  const result = child(['--role', 'raw'], release);
  await ready;
  const pub = await mqtt.connectAsync(url, { clientId: `bench-pub-${Date.now()}` });
  for (let i = 0; i * BLOCK < size; i++) {
    await pub.publishAsync('bench/raw', bytes.subarray(i * BLOCK, (i + 1) * BLOCK), { qos: 0 });
  }
  const { mbPerS } = await result;
  await pub.endAsync();
  return mbPerS as number;
}

const fetchOnce = async (deviceId: string, cutAt = -1) =>
  (await child(['--role', 'agent', '--device', deviceId, '--sha', sha256, '--cut', String(cutAt)])) as {
    mbPerS: number;
    stats: { total: number; requestedBlocks: number; rerequestedBlocks: number };
  };

const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
await fetchOnce('warmup');
const baselines: number[] = [];
const cleans: number[] = [];
for (let t = 0; t < TRIALS; t++) {
  baselines.push(await baseline());
  cleans.push((await fetchOnce(`dev1-${t}`)).mbPerS);
}
const transferMBps = median(cleans);
const baselineMBps = median(baselines);
const cut = await fetchOnce('dev2', 0.5);
const refetched = cut.stats.requestedBlocks - cut.stats.total;

const round = (v: number) => Math.round(v * 10) / 10;
const result = {
  sizeMB: MB,
  blockSize: BLOCK,
  windowBlocks: WINDOW,
  trials: TRIALS,
  transferMBps: round(transferMBps),
  transferTrialsMBps: cleans.map(round),
  baselineRawAedesMBps: round(baselineMBps),
  ratioToRaw: Math.round((transferMBps / baselineMBps) * 100) / 100,
  withDisconnectMBps: round(cut.mbPerS),
  blocksTotal: cut.stats.total,
  blocksRefetchedAfterDisconnect: refetched,
  rerequestedBlocks: cut.stats.rerequestedBlocks,
  targetMBps: 50,
  pass: transferMBps >= 50 && refetched <= WINDOW,
};
if (args.includes('--json')) process.stdout.write(`${JSON.stringify(result)}\n`);
else console.table(result);

await cloud.endAsync();
server.close();
broker.close();
await rm(dir, { recursive: true, force: true });
