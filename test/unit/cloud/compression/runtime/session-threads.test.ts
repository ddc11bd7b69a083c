import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildTemplate } from '../../../../../cloud/compression/distill/students/templates.js';
import { encodeModel } from '../../../../../cloud/compression/onnx/proto.js';
import { createSession, ort } from '../../../../../cloud/compression/runtime/ort.js';

/** Intra-op threads a session used, read from onnxruntime's own profile of a few runs. */
async function threadsUsed(intraOpThreads?: number): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'fleetml-threads-'));
  try {
    const model = buildTemplate({ kind: 'mlp', hidden: [256] }, { sampleShape: [1, 28, 28], classes: 10 });
    const session = await createSession(encodeModel(model), {
      intraOpThreads,
      profileFilePrefix: join(dir, 'profile'),
    });
    const x = new ort.Tensor('float32', new Float32Array(256 * 784), [256, 1, 28, 28]);
    for (let i = 0; i < 3; i++) await session.run({ [session.inputNames[0]]: x });
    session.endProfiling();
    await session.release();
    const [file] = await readdir(dir);
    const events = JSON.parse(await readFile(join(dir, file), 'utf8')) as Array<{
      args?: { thread_scheduling_stats?: { sub_threads?: Record<string, unknown> } };
    }>;
    const stats = events.find((e) => e.args?.thread_scheduling_stats)?.args?.thread_scheduling_stats;
    return 1 + Object.keys(stats?.sub_threads ?? {}).length;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

// onnxruntime's own choice for intraOpNumThreads 0 was one thread on this 2-core VM, so every
// cloud session (distillation, teacher passes, evaluation) ran on half the machine.
describe('cloud sessions use every core by default', () => {
  it.skipIf(availableParallelism() < 2)('0 (the default) means one intra-op thread per core', async () => {
    expect(await threadsUsed()).toBe(availableParallelism());
    expect(await threadsUsed(0)).toBe(availableParallelism());
    expect(await threadsUsed(1)).toBe(1);
  });
});
