import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeCloud, startAedes } from './fake-cloud.js';
import { buildMlp, makeManifest, makeTarget } from './fixtures.js';
import { startTestAgent, type TestAgent } from './harness.js';

// ~1.1 MB model in 8 KiB blocks (~140 blocks), window 8, blocks slowed to ~2 ms each so the
// test can cut the transfer in the middle.
const WINDOW = 8;
const BLOCK = 8192;

describe('resumable transfer (aedes)', () => {
  let broker: Awaited<ReturnType<typeof startAedes>>;
  let cloud: FakeCloud;
  const agents: TestAgent[] = [];

  beforeAll(async () => {
    broker = await startAedes();
    cloud = await FakeCloud.start(broker.url);
  });
  afterAll(async () => {
    for (const a of agents) await a.agent.stop();
    await cloud?.close();
    await broker?.close();
    for (const a of agents) await rm(a.dataDir, { recursive: true, force: true });
  });

  const model = buildMlp({ inputs: 512, hidden: 512, outputs: 16, seed: 11 });
  const manifest = makeManifest(model, {
    blockSize: BLOCK,
    inputs: [{ name: 'x', shape: ['batch', 512], type: 'float32' }],
    outputs: [{ name: 'y', shape: ['batch', 16], type: 'float32' }],
  });
  const total = Math.ceil(model.length / BLOCK);

  it('after a dropped connection at ~50 % asks again for at most one window', async () => {
    await cloud.store.put(model);
    const t = await startTestAgent(broker.url, cloud.token, { windowBlocks: WINDOW });
    agents.push(t);
    cloud.blockDelayMs = 5;
    const served0 = cloud.transfer.stats().blocksServed;
    await cloud.publishTarget(makeTarget(t.agent.identity.deviceId, 1, manifest));
    await cloud.waitFor(
      () => cloud.transfer.stats().blocksServed - served0 >= total / 2,
      20_000,
      'half the blocks',
    );
    t.agent.transport.dropConnection();
    await cloud.waitFor(
      () => cloud.bench.find((b) => b.deviceId === t.agent.identity.deviceId),
      30_000,
      'bench',
    );
    const stats = t.agent.downloader.lastStats!;
    expect(stats.total).toBe(total);
    expect(stats.rerequestedBlocks).toBeGreaterThan(0);
    expect(stats.rerequestedBlocks).toBeLessThanOrEqual(WINDOW);
    expect(stats.requestedBlocks).toBeLessThanOrEqual(total + WINDOW);
  });

  it('after an in-process crash mid-transfer a restarted agent fetches only the missing blocks', async () => {
    const first = await startTestAgent(broker.url, cloud.token, { windowBlocks: WINDOW });
    const deviceId = first.agent.identity.deviceId;
    cloud.blockDelayMs = 10;
    await cloud.publishTarget(makeTarget(deviceId, 1, manifest));
    await cloud.waitFor(
      () => (first.agent.downloader.lastStats?.receivedBlocks ?? 0) >= total / 2,
      20_000,
      'half the blocks',
    );
    // Give the 250 ms bitmap flush a chance, then die without any goodbye.
    await new Promise((r) => setTimeout(r, 300));
    await first.agent.crash();
    const received = first.agent.downloader.lastStats!.receivedBlocks;
    cloud.blockDelayMs = 0;

    const second = await startTestAgent(broker.url, cloud.token, { windowBlocks: WINDOW }, first.dataDir);
    agents.push(second);
    expect(second.agent.identity.deviceId).toBe(deviceId);
    await cloud.waitFor(
      () => cloud.bench.find((b) => b.deviceId === deviceId),
      30_000,
      'bench after restart',
    );
    console.log(
      'DBG',
      received,
      total,
      JSON.stringify(first.agent.downloader.lastStats),
      JSON.stringify(
        cloud.states.filter((x) => x.deviceId === deviceId).map((x) => [x.report.phase, x.report.progress]),
      ),
    );
    const stats = second.agent.downloader.lastStats!;
    expect(stats.resumedBlocks).toBeGreaterThan(0);
    // Only blocks received after the last flush may be fetched twice.
    expect(stats.resumedBlocks).toBeGreaterThan(received - 4 * WINDOW);
    expect(stats.requestedBlocks).toBeLessThanOrEqual(total - stats.resumedBlocks + WINDOW);
  });

  it('after a real kill -9 of the agent process it resumes from the persisted bitmap', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'fleetml-agent-'));
    const root = resolve(import.meta.dirname, '../../..');
    const lines: Array<Record<string, unknown>> = [];
    const spawnAgent = (): ChildProcess => {
      const child = spawn(
        'node',
        [
          join(root, 'bin/fleetml.mjs'),
          'agent',
          'start',
          '--cloud',
          broker.url,
          '--enroll-token',
          cloud.token,
          '--data-dir',
          dataDir,
          '--window',
          String(WINDOW),
          '--bench-runs',
          '3',
          '--telemetry-interval',
          '5',
          '--log-level',
          'debug',
        ],
        { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] },
      );
      child.stdout!.on('data', (chunk: Buffer) => {
        for (const line of chunk.toString().split('\n').filter(Boolean)) {
          try {
            lines.push(JSON.parse(line));
          } catch {}
        }
      });
      return child;
    };
    const enrolledBefore = cloud.enrolled.length;
    let child = spawnAgent();
    try {
      const deviceId = await cloud.waitFor(() => cloud.enrolled[enrolledBefore], 20_000, 'enrollment');
      cloud.blockDelayMs = 30;
      await cloud.publishTarget(makeTarget(deviceId, 1, manifest));
      // Kill once the persisted bitmap claims 40 % of the blocks: the agent dies mid-transfer.
      const resumeFile = join(dataDir, 'transfers', `${manifest.sha256}.resume.json`);
      const deadline = Date.now() + 20_000;
      let held = 0;
      while (held < total * 0.4) {
        if (Date.now() > deadline) throw new Error('the agent never persisted 40 % of the blocks');
        await new Promise((r) => setTimeout(r, 20));
        const text = await readFile(resumeFile, 'utf8').catch(() => '');
        if (!text) continue;
        try {
          held = countBits(Buffer.from(JSON.parse(text).bitmap, 'base64'));
        } catch {}
      }
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      cloud.blockDelayMs = 0;
      const served1 = cloud.transfer.stats().blocksServed;
      child = spawnAgent();
      await cloud.waitFor(
        () => cloud.bench.find((b) => b.deviceId === deviceId),
        30_000,
        'bench after kill -9',
      );
      const resumed = lines.find((l) => l.msg === 'resuming transfer');
      expect(resumed).toBeDefined();
      expect(resumed!.held as number).toBeGreaterThanOrEqual(held);
      expect(resumed!.held as number).toBeLessThan(total);
      // The restarted agent asked only for what it did not hold.
      const servedAfter = cloud.transfer.stats().blocksServed - served1;
      expect(servedAfter).toBeLessThanOrEqual(total - (resumed!.held as number) + WINDOW);
    } finally {
      child.kill('SIGKILL');
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

function countBits(bytes: Buffer): number {
  let n = 0;
  for (const b of bytes) for (let v = b; v; v >>= 1) n += v & 1;
  return n;
}
