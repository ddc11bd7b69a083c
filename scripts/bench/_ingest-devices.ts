/**
 * Device simulator for scripts/bench/ingest.ts (run as a child process so that the simulated
 * devices and the cloud each get a core). Each simulated device keeps `inflight` telemetry
 * batches unacknowledged at most, sends the next one when the cloud's ack arrives, and resends
 * a batch not acknowledged within 10 s, as the agent does. Devices are spread over
 * `connections` MQTT connections (1 per device when connections == devices).
 * Prints one JSON object on stdout.
 */
import { type CloudMqtt, connectCloudMqtt } from '../../cloud/fleet/transport/mqtt.js';
import { createLogger } from '../../shared/logger.js';
import { deviceTopic, encodeJson, parseTopic, type TelemetryRecord } from '../../shared/protocol/index.js';

const [url, devicesArg, connectionsArg, batchArg, inflightArg, durationArg] = process.argv.slice(2);
const devices = Number(devicesArg);
const connections = Number(connectionsArg);
const batch = Number(batchArg);
const inflight = Number(inflightArg);
const durationMs = Number(durationArg);
const ACK_TIMEOUT_MS = 10_000;
const logger = createLogger({ name: 'sim', level: 'warn' });

const ids = Array.from({ length: devices }, (_, i) => `bench-${String(i).padStart(4, '0')}`);
// The broker authenticates every client and confines it to its own topics, so each simulated
// device has its own connection with its own credentials (the bench stores secret = id).
if (connections !== devices)
  throw new Error('the broker allows one device per connection: use --connections = --devices');
const connectStarted = performance.now();
const clients: CloudMqtt[] = [];
for (let c = 0; c < connections; c += 50) {
  const chunk = await Promise.all(
    Array.from({ length: Math.min(50, connections - c) }, (_, k) =>
      connectCloudMqtt({
        url,
        clientId: `fleetml-${ids[c + k]}`,
        username: ids[c + k],
        password: ids[c + k],
        logger,
      }),
    ),
  );
  clients.push(...chunk);
}
const connectMs = performance.now() - connectStarted;

interface DeviceState {
  nextSeq: number;
  outstanding: Map<number, { sentAt: number; payload: Buffer }>;
}
const state = ids.map((): DeviceState => ({ nextSeq: 1, outstanding: new Map() }));
const indexOf = new Map(ids.map((id, i) => [id, i]));
const ackLatencies: number[] = [];
let running = true;
let sentRecords = 0;
let ackedRecords = 0;
let resends = 0;
let publishErrors = 0;
let lastAckAt = 0;

const clientOf = (d: number) => clients[d % connections];

function makeRecords(d: number): TelemetryRecord[] {
  const s = state[d];
  const at = new Date().toISOString();
  const records: TelemetryRecord[] = [];
  for (let k = 0; k < batch; k++) {
    const p50 = 3 + (d % 17) * 0.5 + Math.random();
    records.push({
      seq: s.nextSeq++,
      at,
      cpuLoad: 20 + Math.random() * 30,
      memUsedBytes: 1.2e9,
      memTotalBytes: 4e9,
      tempC: 48 + Math.random() * 10,
      modelId: d % 3 === 0 ? 'mnist-int8' : 'mnist-fp32',
      latency: {
        count: 100,
        p50Ms: p50,
        p90Ms: p50 * 1.3,
        p99Ms: p50 * 1.9,
        maxMs: p50 * 2.5,
        meanMs: p50 * 1.05,
      },
      throttledBits: d % 97 === 0 ? 0x4 : 0,
    });
  }
  return records;
}

function publish(d: number, payload: Buffer): void {
  clientOf(d)
    .publish(deviceTopic(ids[d], 'telemetry'), payload)
    .catch(() => publishErrors++);
}

function send(d: number): void {
  const records = makeRecords(d);
  const payload = encodeJson({ v: 1, records });
  state[d].outstanding.set(records[0].seq, { sentAt: performance.now(), payload });
  sentRecords += records.length;
  publish(d, payload);
}

for (const [c, client] of clients.entries()) {
  const mine = ids.filter((_, d) => d % connections === c);
  await client.subscribe(mine.map((id) => deviceTopic(id, 'telemetry/ack')));
  client.onMessage((topic, payload) => {
    const parsed = parseTopic(topic);
    if (parsed?.kind !== 'device') return;
    const d = indexOf.get(parsed.deviceId);
    if (d === undefined) return;
    const ack = JSON.parse(payload.toString()) as { from: number; to: number };
    const entry = state[d].outstanding.get(ack.from);
    if (!entry) return; // the ack of a resend that was acknowledged already
    state[d].outstanding.delete(ack.from);
    ackedRecords += ack.to - ack.from + 1;
    lastAckAt = performance.now();
    ackLatencies.push(lastAckAt - entry.sentAt);
    if (running) send(d);
  });
}

const resendTimer = setInterval(() => {
  const now = performance.now();
  state.forEach((s, d) => {
    for (const [, entry] of s.outstanding) {
      if (now - entry.sentAt < ACK_TIMEOUT_MS) continue;
      entry.sentAt = now;
      resends++;
      publish(d, entry.payload);
    }
  });
}, 1000);

const started = performance.now();
const cpuAtStart = process.cpuUsage();
for (let d = 0; d < devices; d++) for (let k = 0; k < inflight; k++) send(d);
await new Promise((r) => setTimeout(r, durationMs));
running = false;
const stoppedAt = performance.now();
const deadline = stoppedAt + 60_000;
const outstanding = () => state.reduce((n, s) => n + s.outstanding.size, 0);
while (outstanding() > 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 50));
clearInterval(resendTimer);
await Promise.all(clients.map((c) => c.close()));

ackLatencies.sort((a, b) => a - b);
const pct = (p: number) =>
  ackLatencies[Math.min(ackLatencies.length - 1, Math.floor((p / 100) * ackLatencies.length))] ?? 0;
process.stdout.write(
  `${JSON.stringify({
    devices,
    connections,
    connectMs,
    sentRecords,
    ackedRecords,
    uniqueRecords: state.reduce((n, s) => n + s.nextSeq - 1, 0),
    unacked: outstanding(),
    resends,
    publishErrors,
    elapsedMs: lastAckAt - started,
    sendingMs: stoppedAt - started,
    ackP50Ms: pct(50),
    ackP99Ms: pct(99),
    cpuS: (process.cpuUsage(cpuAtStart).user + process.cpuUsage(cpuAtStart).system) / 1e6,
  })}\n`,
);
process.exit(0);
