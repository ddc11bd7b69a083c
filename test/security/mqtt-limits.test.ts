import { randomBytes } from 'node:crypto';
import net from 'node:net';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENROLL_CLIENT_PREFIX, ENROLL_USERNAME, enrollRequestTopic } from '../../shared/protocol/index.js';
import { memoryMb, type SpawnedCloud, spawnCloud } from './support.js';

// Issue 12, findings 7 and 8 (MQTT side), against a real `fleetml cloud start` process with
// its embedded broker on loopback.
const MB = 1024 * 1024;

/** MQTT remaining length as its variable-length encoding. */
function remainingLength(n: number): Buffer {
  const bytes: number[] = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    bytes.push(byte);
  } while (n > 0);
  return Buffer.from(bytes);
}

/** Opens a connection and streams a CONNECT that declares `bytes`; resolves with what was sent when it is closed. */
function hugeConnect(port: number, bytes: number): Promise<number> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunk = Buffer.alloc(MB, 0x41);
    let sent = 0;
    const done = () => resolve(sent);
    socket.on('error', done);
    socket.on('close', done);
    socket.on('connect', () => {
      socket.write(Buffer.concat([Buffer.from([0x10]), remainingLength(bytes)]));
      const pump = () => {
        while (sent < bytes && !socket.destroyed) {
          sent += chunk.length;
          if (!socket.write(chunk)) return void socket.once('drain', pump);
        }
        socket.end();
      };
      pump();
    });
  });
}

const hardware = {
  hostname: 'bogus',
  arch: 'x64',
  platform: 'linux',
  cpuModel: 'x',
  cpuCores: 1,
  memoryBytes: 1,
  gpu: null,
  executionProviders: ['cpu'],
  onnxruntimeVersion: '1',
  nodeVersion: '20',
};

/** One bogus enrollment: connect as `enroll`, publish a request with a made-up token. */
async function bogusEnrollment(url: string): Promise<'sent' | 'refused'> {
  const requestId = `${ENROLL_CLIENT_PREFIX}${randomBytes(6).toString('hex')}`;
  try {
    const client = await mqtt.connectAsync(url, {
      clientId: requestId,
      username: ENROLL_USERNAME,
      password: ENROLL_USERNAME,
      reconnectPeriod: 0,
      connectTimeout: 10_000,
    });
    const request = { v: 1, requestId, token: `enr_bogus_${requestId}`, agentVersion: '0', hardware };
    await client.publishAsync(enrollRequestTopic(requestId), JSON.stringify(request), { qos: 0 });
    await client.endAsync();
    return 'sent';
  } catch {
    return 'refused';
  }
}

describe('attack: unauthenticated MQTT resource use and enrollment floods', () => {
  let cloud: SpawnedCloud;

  beforeAll(async () => {
    cloud = await spawnCloud(['--insecure-plain-mqtt']);
  }, 120_000);
  afterAll(async () => cloud?.stop());

  it('closes three 250 MB CONNECT packets from their header: cloud RSS stays under 300 MB', async () => {
    const sent = await Promise.all([1, 2, 3].map(() => hugeConnect(cloud.mqttPort, 250 * MB)));
    const { peak } = await memoryMb(cloud.proc.pid);
    expect(peak, `peak RSS ${peak.toFixed(0)} MB`).toBeLessThan(300);
    for (const bytes of sent) expect(bytes).toBeLessThan(250 * MB);
    expect(cloud.proc.running).toBe(true);
  }, 120_000);

  it('rate limits 3,000 bogus enrollments from one address', async () => {
    const url = `mqtt://127.0.0.1:${cloud.mqttPort}`;
    const outcomes: string[] = [];
    const queue = Array.from({ length: 3000 }, (_, i) => i);
    const worker = async () => {
      while (queue.pop() !== undefined) outcomes.push(await bogusEnrollment(url));
    };
    await Promise.all(Array.from({ length: 30 }, worker));
    const refusedLogs = () => cloud.proc.logs.filter((l) => l.msg === 'enrollment refused').length;
    // Give the cloud time to work through whatever got through.
    await new Promise((r) => setTimeout(r, 2000));
    const sent = outcomes.filter((o) => o === 'sent').length;
    expect(outcomes).toHaveLength(3000);
    expect(sent).toBeLessThanOrEqual(60);
    expect(refusedLogs()).toBeLessThanOrEqual(60);
    expect(cloud.proc.running).toBe(true);
  }, 300_000);
});
