import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mnistSplit, sliceDataset } from '../../../../cloud/compression/data/mnist.js';
import { writeNpy } from '../../../../cloud/compression/data/npy.js';
import { buildTemplate } from '../../../../cloud/compression/distill/students/templates.js';
import { ModelRunner } from '../../../../cloud/compression/distill/teacher.js';
import { trainStudent } from '../../../../cloud/compression/distill/trainer.js';
import { loadModel, saveModel } from '../../../../cloud/compression/onnx/io.js';

const run = promisify(execFile);
const BIN = resolve(import.meta.dirname, '../../../../bin/fleetml.mjs');

describe('fleetml distill', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetml-distill-'));
    const { train: all, test } = mnistSplit();
    const train = sliceDataset(all, 0, 1024);
    const val = sliceDataset(test, 0, 300);
    const teacher = await trainStudent(
      buildTemplate(
        { kind: 'mlp', hidden: [64] },
        { sampleShape: [1, 28, 28], classes: 10, inputName: 'pixels' },
      ),
      undefined,
      train,
      val,
      { epochs: 3, loss: { mode: 'hard' }, optimizer: { kind: 'sgd', lr: 0.1 }, intraOpThreads: 1 },
    );
    await saveModel(teacher.model, join(dir, 't.onnx'));
    await writeNpy(join(dir, 'x.npy'), train.x.slice(), [1024, 784]);
    await writeNpy(join(dir, 'y.npy'), train.y.slice(), [1024]);
    await writeNpy(join(dir, 'vx.npy'), val.x.slice(), [300, 1, 28, 28]);
    await writeNpy(join(dir, 'vy.npy'), val.y.slice(), [300]);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('--json prints one object with accuracy, agreement, parameters, bytes and samplesPerSecond', async () => {
    const out = join(dir, 's.onnx');
    const { stdout } = await run(process.execPath, [
      BIN,
      'distill',
      '--teacher',
      join(dir, 't.onnx'),
      '--data',
      join(dir, 'x.npy'),
      '--labels',
      join(dir, 'y.npy'),
      '--student',
      'mlp:32',
      '--epochs',
      '3',
      '--batch',
      '64',
      '--temperature',
      '4',
      '--alpha',
      '0.8',
      '--optimizer',
      'adam',
      '--lr',
      '0.005',
      '--seed',
      '3',
      '--val-data',
      join(dir, 'vx.npy'),
      '--val-labels',
      join(dir, 'vy.npy'),
      '-o',
      out,
      '--json',
      '--threads',
      '1',
    ]);
    const result = JSON.parse(stdout);
    expect(result.accuracy).toBeGreaterThan(0.7);
    expect(result.agreement).toBeGreaterThan(0.7);
    expect(result.parameters).toBe(784 * 32 + 32 + 32 * 10 + 10);
    expect(result.bytes).toBeGreaterThan(result.parameters * 4);
    expect(result.samplesPerSecond).toBeGreaterThan(0);
    // The student keeps the teacher's input name and shape, so it is a drop-in replacement.
    const runner = await ModelRunner.create(await loadModel(out), 'student');
    expect(runner.input).toBe('pixels');
    expect(runner.sampleShape).toEqual([1, 28, 28]);
    await runner.release();
  }, 60_000);

  it('--student shrink:0.5 narrows the teacher itself and distils it without labels', async () => {
    const out = join(dir, 'shrunk.onnx');
    const { stdout } = await run(process.execPath, [
      BIN,
      'distill',
      '--teacher',
      join(dir, 't.onnx'),
      '--data',
      join(dir, 'x.npy'),
      '--student',
      'shrink:0.5',
      '--epochs',
      '4',
      '--batch',
      '64',
      '--optimizer',
      'adam',
      '--lr',
      '0.003',
      '--val-data',
      join(dir, 'vx.npy'),
      '-o',
      out,
      '--json',
      '--threads',
      '1',
    ]);
    const result = JSON.parse(stdout);
    // The teacher's 64 hidden units become 32; input and logits keep their widths.
    expect(result.parameters).toBe(784 * 32 + 32 + 32 * 10 + 10);
    expect(result.accuracy).toBeNull();
    expect(result.agreement).toBeGreaterThan(0.8);
    const student = await loadModel(out);
    expect(student.graph.node.map((n) => n.opType)).toEqual(
      (await loadModel(join(dir, 't.onnx'))).graph.node.map((n) => n.opType),
    );
  }, 60_000);

  it('a bad template gives a coded error on stderr and exit code 1', async () => {
    await expect(
      run(process.execPath, [
        BIN,
        'distill',
        '--teacher',
        join(dir, 't.onnx'),
        '--data',
        join(dir, 'x.npy'),
        '--student',
        'rnn:3',
        '-o',
        join(dir, 'z.onnx'),
      ]),
    ).rejects.toMatchObject({ code: 1, stderr: expect.stringContaining('INPUT_INVALID') });
  });
});
