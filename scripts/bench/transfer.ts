/**
 * Block transfer through the embedded broker on loopback: a 20 MB artifact fetched by the
 * agent's Downloader from the cloud's transfer server (real aedes, real MQTT clients, real
 * ArtifactStore), then the same with a forced disconnect at 50 %.
 * Baseline in the same run: the same bytes pushed as 64 KiB QoS 0 messages straight through
 * aedes (no requests, no hashing, no disk) — the ceiling the transfer protocol works under.
 * Usage: npx tsx scripts/bench/transfer.ts [--mb 20] [--window 16] [--json]
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Aedes } from 'aedes';
import mqtt from 'mqtt';
import { Downloader } from '../../agent/transfer/downloader.js';
import { MqttTransport } from '../../agent/transport/mqtt.js';
import { ArtifactStore } from '../../cloud/fleet/artifacts.js';
import { createTransferServer } from '../../cloud/fleet/transfer-server.js';
import { createLogger } from '../../shared/logger.js';
import { CLOUD_SUBSCRIPTIONS, parseTopic } from '../../shared/protocol/index.js';

const args = process.argv.slice(2);
const arg = (name: string, fallback: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const MB = arg('mb', 20);
const WINDOW = arg('window', 16);
const BLOCK = 64 * 1024;
const logger = createLogger({ name: 'bench', level: 'warn', destination: process.stderr });

const broker = await Aedes.createBroker();
const server = net.createServer(broker.handle);
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const url = `mqtt://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
const dir = await mkdtemp(join(tmpdir(), 'fleetml-bench-transfer-'));
const store = new ArtifactStore(join(dir, 'store'));
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

async function baseline(): Promise<number> {
  const sub = await mqtt.connectAsync(url, { clientId: 'bench-sub' });
  const pub = await mqtt.connectAsync(url, { clientId: 'bench-pub' });
  await sub.subscribeAsync('bench/raw', { qos: 0 });
  const total = Math.ceil(size / BLOCK);
  let got = 0;
  const done = new Promise<void>((resolve) =>
    sub.on('message', () => {
      if (++got === total) resolve();
    }),
  );
  const t0 = performance.now();
  for (let i = 0; i < total; i++) {
    await pub.publishAsync('bench/raw', bytes.subarray(i * BLOCK, (i + 1) * BLOCK), { qos: 0 });
  }
  await done;
  const seconds = (performance.now() - t0) / 1000;
  await sub.endAsync();
  await pub.endAsync();
  return size / 1024 / 1024 / seconds;
}

async function fetchOnce(deviceId: string, disconnectAt: number | null) {
  const transport = new MqttTransport({ url, clientId: `bench-${deviceId}`, logger });
  await transport.waitConnected(5000);
  const downloader = new Downloader({
    transport,
    deviceId,
    dir: join(dir, deviceId),
    logger,
    windowBlocks: WINDOW,
  });
  let cut = false;
  const t0 = performance.now();
  const { path, stats } = await downloader.download({ sha256, size, blockSize: BLOCK }, (fraction) => {
    if (disconnectAt !== null && !cut && fraction >= disconnectAt) {
      cut = true;
      transport.dropConnection();
    }
  });
  const seconds = (performance.now() - t0) / 1000;
  await rm(path);
  await transport.close();
  return { mbPerS: size / 1024 / 1024 / seconds, seconds, stats };
}

const baselineMbPerS = await baseline();
await fetchOnce('warmup', null);
const clean = await fetchOnce('dev1', null);
const cut = await fetchOnce('dev2', 0.5);
const refetched = cut.stats.requestedBlocks - cut.stats.total;

const result = {
  sizeMB: MB,
  blockSize: BLOCK,
  windowBlocks: WINDOW,
  transferMBps: Math.round(clean.mbPerS * 10) / 10,
  baselineRawAedesMBps: Math.round(baselineMbPerS * 10) / 10,
  ratioToRaw: Math.round((clean.mbPerS / baselineMbPerS) * 100) / 100,
  withDisconnectMBps: Math.round(cut.mbPerS * 10) / 10,
  blocksTotal: cut.stats.total,
  blocksRefetchedAfterDisconnect: refetched,
  rerequestedBlocks: cut.stats.rerequestedBlocks,
  targetMBps: 50,
  pass: clean.mbPerS >= 50 && refetched <= WINDOW,
};
if (args.includes('--json')) process.stdout.write(`${JSON.stringify(result)}\n`);
else console.table(result);

await cloud.endAsync();
server.close();
broker.close();
await rm(dir, { recursive: true, force: true });
