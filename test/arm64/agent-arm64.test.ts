import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadMnist } from '../../cloud/compression/data/mnist.js';
import { decodeModel, encodeModel } from '../../cloud/compression/onnx/proto.js';
import { ProfileRegistry } from '../../cloud/compression/profiles/registry.js';
import { buildQdq, calibrateModel } from '../../cloud/compression/quantize/static.js';
import { createSession, ort } from '../../cloud/compression/runtime/ort.js';
import { startTestCloud, type TestCloud } from '../integration/support/test-cloud.js';
import {
  AGENT_ENTRY,
  Arm64Process,
  arm64Tree,
  BOARDS,
  EMULATED_MS,
  prepareArm64,
  ROOT,
  runArm64Script,
  waitFor,
  withBoardCpuinfo,
} from './support.js';

// The agent as linux/arm64 (a Raspberry Pi 5 on the 64-bit OS), run by QEMU user emulation with
// the Cortex-A76 CPU model and the Pi 5's board files as its facts root, against a native x86
// cloud on loopback. Correctness only: emulation says nothing about a Pi's speed.
const setup = await prepareArm64();
const skipReason = 'skip' in setup ? setup.skip : null;
if (skipReason) process.stderr.write(`arm64 tests skipped: ${skipReason}\n`);
const QEMU = { QEMU_CPU: 'cortex-a76' };
const SAMPLE = join(ROOT, 'cloud/samples/mnist-mlp.onnx');

/** The FP32 sample and its static INT8 variant made the way the rpi5 profile asks. */
async function mnistVariants(): Promise<{ fp32: Buffer; int8: Buffer }> {
  const fp32 = await readFile(SAMPLE);
  const mnist = loadMnist();
  const count = 64;
  const data = { x: mnist.x.subarray(0, count * 784), count, sampleShape: [1, 28, 28] };
  const int8 = new ProfileRegistry().get('rpi5').int8;
  const q = buildQdq(await calibrateModel(decodeModel(fp32), data), { activationType: int8.activations });
  return { fp32, int8: Buffer.from(encodeModel(q.model)) };
}

describe.skipIf(skipReason !== null)(
  `the agent as linux/arm64 under QEMU (cortex-a76, Pi 5 facts)${skipReason ? ` - skipped: ${skipReason}` : ''}`,
  () => {
    const { node, modules } = setup as { node: string; modules: string };
    let tree: string;
    let cloud: TestCloud;
    let agent: Arm64Process;
    let variants: { fp32: Buffer; int8: Buffer };
    let deviceId: string;

    beforeAll(async () => {
      const prepared = Date.now();
      tree = await arm64Tree(modules);
      variants = await mnistVariants();
      cloud = await startTestCloud({}, 'fleetml-arm64-');
      const { token } = await cloud.cloud.services.tokens.createEnrollToken();
      // The agent and every child it spawns (provider probe, model check) see the Pi 5's
      // /proc/cpuinfo, as on the board: onnxruntime crashes on QEMU's x86 one (support.ts).
      const [command, args] = withBoardCpuinfo('rpi5', node, [
        AGENT_ENTRY,
        'agent',
        'start',
        `--cloud=${cloud.cloud.mqttUrl}`,
        `--enroll-token=${token}`,
        `--data-dir=${join(cloud.dir, 'agent')}`,
        `--facts-root=${join(BOARDS, 'rpi5')}`,
        '--telemetry-interval=3',
        '--bench-runs=3',
        '--bench-warmup=1',
        '--bench-budget=60000',
        '--probe-runs=1',
        // One onnxruntime thread: emulated threads that spin cost the 2-core host dearly.
        '--threads=1',
        `--model-check-timeout=${EMULATED_MS}`,
        '--log-level=info',
      ]);
      const started = Date.now();
      process.stderr.write(
        `arm64 tree, variants and cloud ready in ${Math.round((started - prepared) / 1000)} s\n`,
      );
      agent = new Arm64Process(command, tree, args, QEMU);
      const device = await waitFor(
        'the arm64 agent to enroll and come online',
        async () => (await cloud.cloud.services.devices.list()).find((d) => d.online),
        EMULATED_MS,
        () => agent.tail(),
      );
      deviceId = device.id;
      process.stderr.write(
        `arm64 agent online ${Math.round((Date.now() - started) / 1000)} s after its start\n`,
      );
    }, EMULATED_MS + 120_000);

    afterAll(async () => {
      await agent?.stop();
      await cloud?.stop();
      if (tree) await rm(tree, { recursive: true, force: true });
    }, 120_000);

    it('enrolls with arch arm64 and is matched to the rpi5 profile from its board files', async () => {
      const device = await cloud.cloud.services.devices.get(deviceId);
      expect(device.hardware.arch).toBe('arm64');
      expect(device.hardware.cpuModel).toBe('Raspberry Pi 5 Model B Rev 1.0 (4x Cortex-A76)');
      expect(device.hardware.cpuFlags).toContain('asimddp');
      expect(device.profile).toBe('rpi5');
    });

    const deploy = async (modelId: string, policy: Record<string, unknown> = {}) => {
      const { rollouts, rolloutStore } = cloud.cloud.services;
      const rollout = await rollouts.create(
        modelId,
        { profile: 'rpi5' },
        { deviceTimeoutS: 900, ...policy },
        'test',
      );
      const done = await waitFor(
        `rollout of ${modelId}`,
        async () => {
          const r = await rolloutStore.get(rollout.id);
          return r && r.status !== 'running' ? r : undefined;
        },
        EMULATED_MS,
        () => agent.tail(),
      );
      return { done, executions: await rolloutStore.executions(rollout.id) };
    };

    it(
      'installs FP32 then INT8 by profile: model check, golden check and benchmark pass on arm64',
      async () => {
        const { models, devices, goldens, deviceAudit, telemetry } = cloud.cloud.services;
        const fp32 = await models.add(variants.fp32, { name: 'mnist', variant: 'fp32' });
        const int8 = await models.add(variants.int8, { name: 'mnist', variant: 'int8', profile: 'rpi5' });
        for (const model of [fp32, int8]) {
          // The cloud's golden set (outputs computed on x86) travels in the manifest: the device
          // must reproduce them within the variant's bounds before it activates the model.
          const golden = await goldens.find(model.id);
          expect(golden, `no golden set for ${model.variant}`).toBeDefined();
          const { done, executions } = await deploy(model.id);
          expect(done.status, agent.tail()).toBe('succeeded');
          expect(executions).toHaveLength(1);
          expect(executions[0]).toMatchObject({ deviceId, status: 'succeeded' });
          expect(executions[0].p50Ms).toBeGreaterThan(0);
          await waitFor(
            'the active model',
            async () => (await devices.get(deviceId)).activeModelId === model.id,
          );
          const fidelity = await waitFor('the golden check in the bench report', async () => {
            const f = await deviceAudit.fidelity(deviceId);
            return f?.modelId === model.id ? f : undefined;
          });
          expect(fidelity.cases).toBe(golden!.cases);
          expect(fidelity.maxAbs).toBeLessThanOrEqual(golden!.maxAbs);
          process.stderr.write(
            `arm64 golden ${model.variant}: ${fidelity.cases} cases, max |diff| ${fidelity.maxAbs}, cosine ${fidelity.cosine}\n`,
          );
        }
        const goldenOk = (await telemetry.events(deviceId)).filter((e) => e.code === 'GOLDEN_OK');
        expect(goldenOk.length).toBeGreaterThanOrEqual(2);
        expect(agent.logs.filter((l) => l.msg === 'golden check passed')).toHaveLength(2);
        const latency = (await cloud.api('GET', `/api/devices/${deviceId}/latency`)).body;
        expect(latency.bench.sha256).toBe(int8.sha256);
        expect(latency.bench.runs).toBeGreaterThanOrEqual(1);
      },
      3 * EMULATED_MS,
    );

    it('sends telemetry the cloud stores', async () => {
      await waitFor(
        'telemetry rows',
        async () => (await cloud.cloud.services.telemetry.count(deviceId)) >= 2,
      );
    });

    it(
      'rolls back to the previous model when a rollout aborts',
      async () => {
        const { models, devices } = cloud.cloud.services;
        const previous = (await devices.get(deviceId)).activeModelId;
        const model = decodeModel(variants.fp32);
        model.docString = 'slow on purpose';
        const slow = await models.add(Buffer.from(encodeModel(model)), { name: 'mnist-slow' });
        const { done, executions } = await deploy(slow.id, {
          canaryPercent: 100,
          latencyObjectiveMs: 0.000001,
        });
        expect(done.status).toBe('aborted');
        expect(executions[0].rolledBack).toBe(true);
        await waitFor(
          'the rollback',
          async () => (await devices.get(deviceId)).activeModelId === previous,
          EMULATED_MS,
          () => agent.tail(),
        );
      },
      2 * EMULATED_MS,
    );

    it(
      'computes the FP32 and INT8 variants as x86 does (numerics under cortex-a76)',
      async () => {
        const mnist = loadMnist();
        const count = 32;
        const offset = 5000;
        const x = mnist.x.slice(offset * 784, (offset + count) * 784);
        const dir = cloud.dir;
        await writeFile(join(dir, 'x.bin'), x);
        for (const [name, bytes] of Object.entries(variants)) {
          await writeFile(join(dir, `${name}.onnx`), bytes);
          const session = await createSession(bytes);
          const feeds = { input: new ort.Tensor('float32', x, [count, 1, 28, 28]) };
          const x86 = (await session.run(feeds)).logits.data as Float32Array;
          await session.release();
          const out = await runArm64Script(
            node,
            tree,
            ARM_RUN,
            [join(dir, `${name}.onnx`), join(dir, 'x.bin'), String(count)],
            QEMU,
          );
          const raw = Buffer.from(out.trim(), 'base64');
          const arm = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.length));
          expect(arm.length).toBe(x86.length);
          let maxAbsDiff = 0;
          for (let i = 0; i < arm.length; i++) maxAbsDiff = Math.max(maxAbsDiff, Math.abs(arm[i] - x86[i]));
          const argmax = (a: Float32Array, r: number) => {
            const row = a.subarray(r * 10, r * 10 + 10);
            return row.indexOf(Math.max(...row));
          };
          for (let r = 0; r < count; r++) expect(argmax(arm, r)).toBe(argmax(x86, r));
          process.stderr.write(
            `arm64 ${name}: max |arm64 - x86| = ${maxAbsDiff} over ${arm.length} logits\n`,
          );
          // FP32: kernels differ (NEON vs AVX) only in summation order. INT8: integer arithmetic.
          expect(maxAbsDiff).toBeLessThanOrEqual(name === 'fp32' ? 1e-4 : 1e-5);
        }
      },
      EMULATED_MS,
    );
  },
);

// Runs in the arm64 Node (CommonJS): one batch through onnxruntime-node, logits out as base64.
const ARM_RUN = `
const ort = require('onnxruntime-node');
const fs = require('fs');
const [model, input, count] = process.argv.slice(1);
const buf = fs.readFileSync(input);
const x = new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4);
(async () => {
  const s = await ort.InferenceSession.create(model, { executionProviders: ['cpu'], intraOpNumThreads: 1 });
  const out = await s.run({ input: new ort.Tensor('float32', x, [Number(count), 1, 28, 28]) });
  const y = out.logits.data;
  process.stdout.write(Buffer.from(y.buffer, y.byteOffset, y.byteLength).toString('base64'));
})();
`;
