import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateFleetKeyPair, signManifest } from '../../../shared/manifest/index.js';
import { FakeCloud } from './fake-cloud.js';
import { buildGolden, buildMlp, makeManifest, makeTarget } from './fixtures.js';
import { startTestAgent, type TestAgent } from './harness.js';
import { Mosquitto, mosquittoBinary } from './mosquitto.js';

// The same agent against Debian's mosquitto: plain MQTT 3.1.1 means any broker works.
const binary = mosquittoBinary();

describe.skipIf(!binary)(
  `agent on mosquitto${binary ? '' : ' (skipped: mosquitto binary not installed)'}`,
  () => {
    const keys = generateFleetKeyPair();
    let broker: Mosquitto;
    let cloud: FakeCloud;
    let t: TestAgent;

    beforeAll(async () => {
      broker = await Mosquitto.start(binary!);
      cloud = await FakeCloud.start(broker.url, keys);
      t = await startTestAgent(broker.url, cloud.token, {
        telemetryIntervalS: 0.25,
        telemetryAckTimeoutMs: 1000,
        telemetryAck: 'cloud',
        windowBlocks: 16,
      });
    });
    afterAll(async () => {
      await t?.agent.stop();
      await cloud?.close();
      await broker?.close();
      if (t) await rm(t.dataDir, { recursive: true, force: true });
    });

    it('delivers a signed model with its golden set, benchmarks it and sends telemetry', async () => {
      const model = buildMlp({ inputs: 256, hidden: 256, outputs: 8, seed: 21 });
      const golden = await buildGolden(model, 256);
      await cloud.store.put(model);
      await cloud.store.put(golden);
      const manifest = makeManifest(
        model,
        {
          version: 2,
          blockSize: 8192,
          inputs: [{ name: 'x', shape: ['batch', 256], type: 'float32' }],
          outputs: [{ name: 'y', shape: ['batch', 8], type: 'float32' }],
        },
        golden,
      );
      cloud.blockDelayMs = 3;
      const deviceId = t.agent.identity.deviceId;
      await cloud.publishTarget(makeTarget(deviceId, 1, manifest, keys));
      // Cut the link mid-transfer: the download resumes on the same broker.
      await cloud.waitFor(
        () => (t.agent.downloader.lastStats?.receivedBlocks ?? 0) >= 10,
        10_000,
        'first blocks',
      );
      t.agent.transport.dropConnection();
      const bench = await cloud.waitFor(
        () => cloud.bench.find((b) => b.report.sha256 === manifest.sha256),
        30_000,
        'bench',
      );
      expect(bench.report.p50Ms).toBeGreaterThan(0);
      expect(t.agent.downloader.lastStats!.rerequestedBlocks).toBeLessThanOrEqual(16);
      // The event and the bench report travel on different topics (and the event may wait in
      // the outbox over the cut), so it can arrive after the report: wait for it.
      const goldenOk = await cloud.waitFor(
        () => cloud.events.find((e) => e.event.code === 'GOLDEN_OK'),
        5000,
        'golden check event',
      );
      expect(goldenOk.event.code).toBe('GOLDEN_OK');
      await cloud.waitFor(
        () => cloud.telemetry.find((r) => r.record.latency !== null),
        5000,
        'telemetry with latency',
      );
    });

    it('rejects a manifest signed by another key and keeps the model', async () => {
      const model = buildMlp({ seed: 22 });
      await cloud.store.put(model);
      const m = makeManifest(model, { version: 3 });
      // The target is the cloud's; the manifest inside is signed by another key.
      await cloud.publishTarget(
        makeTarget(t.agent.identity.deviceId, 2, m, keys, signManifest(m, generateFleetKeyPair())),
      );
      const state = await cloud.waitFor(
        () => cloud.states.find((s) => s.report.targetVersion === 2 && s.report.phase === 'failed'),
        10_000,
        'rejection',
      );
      expect(state.report.error?.code).toBe('MANIFEST_SIGNATURE');
      expect(state.report.activeModel?.version).toBe(2);
      expect(signManifest(m, keys)).toMatch(/^ed25519:/);
    });

    it('telemetry produced while mosquitto is down arrives after it returns, each seq once', async () => {
      const deviceId = t.agent.identity.deviceId;
      await broker.halt();
      await new Promise((r) => setTimeout(r, 1500));
      expect(t.agent.outbox.size).toBeGreaterThanOrEqual(3);
      await broker.resume();
      const contiguous = () => {
        const u = [
          ...new Set(cloud.telemetry.filter((r) => r.deviceId === deviceId).map((r) => r.record.seq)),
        ];
        return Math.min(...u) === 1 && u.length === Math.max(...u) - Math.min(...u) + 1 && u.length;
      };
      const before = contiguous() || 0;
      await cloud.waitFor(
        () => (contiguous() || 0) > before + 3 && t.agent.outbox.size <= 3,
        20_000,
        'backlog',
      );
      const seqs = cloud.telemetry.filter((r) => r.deviceId === deviceId).map((r) => r.record.seq);
      const unique = new Set(seqs);
      expect(unique.size).toBe(Math.max(...unique));
    });
  },
);
