import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../../agent/config.js';
import { type AgentHandle, startAgent } from '../../../agent/main.js';
import { createLogger } from '../../../shared/logger.js';
import { FakeCloud, startAedes } from './fake-cloud.js';
import { buildMlp, makeManifest, makeTarget } from './fixtures.js';

// The thin path with real parts: aedes broker, mqtt clients, ArtifactStore + transfer server,
// onnxruntime. The test plays the cloud; the agent is the real one.
describe('agent thin path on embedded aedes', () => {
  let broker: Awaited<ReturnType<typeof startAedes>>;
  let cloud: FakeCloud;
  let agent: AgentHandle;
  let dataDir: string;
  const logLines: Array<Record<string, unknown>> = [];

  beforeAll(async () => {
    broker = await startAedes();
    cloud = await FakeCloud.start(broker.url);
    dataDir = await mkdtemp(join(tmpdir(), 'fleetml-agent-'));
    const sink = new Writable({
      write(chunk, _enc, done) {
        for (const line of chunk.toString().split('\n').filter(Boolean)) logLines.push(JSON.parse(line));
        done();
      },
    });
    const config = resolveConfig({
      cloudUrl: broker.url,
      enrollToken: cloud.token,
      dataDir,
      telemetryIntervalS: 0.5,
      benchRuns: 10,
      benchWarmupRuns: 2,
    });
    agent = await startAgent({
      config,
      logger: createLogger({ name: 'agent', level: 'debug', destination: sink }),
    });
  });

  afterAll(async () => {
    await agent?.stop();
    await cloud?.close();
    await broker?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('enrolls and persists its identity owner-only', async () => {
    expect(cloud.enrolled).toEqual([agent.identity.deviceId]);
    const mode = (await stat(join(dataDir, 'identity.json'))).mode & 0o777;
    expect(mode).toBe(0o600);
    await cloud.waitFor(() => cloud.status.find((s) => s.online), 5000, 'online status');
  });

  it('downloads, verifies, benchmarks the target model and reports', async () => {
    const model = buildMlp();
    await cloud.store.put(model);
    const manifest = makeManifest(model);
    await cloud.publishTarget(makeTarget(agent.identity.deviceId, 1, manifest));
    const { report } = await cloud.waitFor(
      () => cloud.bench.find((b) => b.report.sha256 === manifest.sha256),
      20_000,
      'bench',
    );
    expect(report.ep).toBe('cpu');
    expect(report.runs).toBe(10);
    expect(report.p50Ms).toBeGreaterThan(0);
    expect(report.p99Ms).toBeGreaterThanOrEqual(report.p50Ms);
    await cloud.waitFor(
      () =>
        cloud.states.find(
          (s) => s.report.phase === 'active' && s.report.activeModel?.sha256 === manifest.sha256,
        ),
      5000,
      'active state',
    );
    const telemetry = await cloud.waitFor(
      () => cloud.telemetry.find((t) => t.record.latency !== null),
      5000,
      'telemetry',
    );
    expect(telemetry.record.modelId).toBe('mlp');
    expect(telemetry.record.memTotalBytes).toBeGreaterThan(0);
    const seqs = cloud.telemetry.map((t) => t.record.seq);
    expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
  });

  it('rejects a malformed target with a logged coded error and keeps working', async () => {
    const before = cloud.telemetry.length;
    await cloud.publishTarget('{"v":1,"deviceId":');
    await cloud.publishTarget(JSON.stringify({ v: 1, deviceId: agent.identity.deviceId, version: 'x' }));
    await cloud.waitFor(
      () => cloud.events.filter((e) => e.event.code.startsWith('MSG_')).length >= 2,
      5000,
      'events',
    );
    expect(cloud.events.map((e) => e.event.code)).toEqual(
      expect.arrayContaining(['MSG_NOT_JSON', 'MSG_SCHEMA']),
    );
    expect(logLines.some((l) => l.code === 'MSG_NOT_JSON' && l.level === 50)).toBe(true);
    // Still alive: telemetry keeps flowing and a repeated old target changes nothing.
    await cloud.waitFor(() => cloud.telemetry.length > before + 1, 5000, 'more telemetry');
    const benchCount = cloud.bench.length;
    const lastBench = cloud.bench.at(-1);
    const model = buildMlp();
    await cloud.publishTarget(makeTarget(agent.identity.deviceId, 1, makeManifest(model)));
    await new Promise((r) => setTimeout(r, 500));
    // Not installed or measured again: at most the last benchmark report, sent again unchanged.
    for (const b of cloud.bench.slice(benchCount)) expect(b.report).toEqual(lastBench?.report);
  });
});
