import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { register, summaryLine } from '../../../../cloud/cli/distill.js';
import { type DistillCliOptions, distillRequest } from '../../../../cloud/cli/distill-options.js';

// Every flag of `fleetml distill --help` reaches the trainer's request; what the trainer does
// with each is tested in test/integration/compression/distill/ (see docs/claims.md).
function requestOf(argv: string[]) {
  const program = new Command('fleetml');
  register(program);
  const distill = program.commands.find((c) => c.name() === 'distill')!;
  distill.parseOptions([
    '--teacher',
    't.onnx',
    '--data',
    'mnist',
    '--student',
    'mlp:64',
    '-o',
    's.onnx',
    ...argv,
  ]);
  return distillRequest(distill.opts() as DistillCliOptions);
}

const codeOf = (argv: string[]) => {
  try {
    requestOf(argv);
    return 'accepted';
  } catch (error) {
    return `${(error as { code: string }).code}: ${(error as Error).message}`;
  }
};

describe('distill flags', () => {
  it('defaults as --help says', () => {
    const r = requestOf([]);
    expect(r).toMatchObject({ teacher: 't.onnx', data: 'mnist', student: 'mlp:64', output: 's.onnx' });
    expect(r.train).toMatchObject({
      epochs: 10,
      batch: 128,
      seed: 0,
      shift: 0,
      patience: 0,
      stepsPerRun: 16,
      intraOpThreads: 0,
      allowSpinning: false,
      loss: { temperature: 4, alpha: 0.9, blankWeight: 1, hardWeight: 0 },
      optimizer: { kind: 'sgd', lr: undefined },
      schedule: { kind: 'cosine', warmupSteps: 0 },
    });
    expect(r.task).toBeUndefined();
    expect(r.images).toEqual({ width: undefined, height: undefined, mean: undefined, std: undefined });
  });

  it('maps every flag', () => {
    const r = requestOf([
      ...['--labels', 'y.npy', '--val-data', 'vx.npy', '--val-labels', 'vy.npy'],
      ...['--image-size', '320x48', '--image-mean', '0.5,0.5,0.5', '--image-std', '0.25'],
      ...['--epochs', '3', '--batch', '32', '--temperature', '2', '--alpha', '0.5'],
      ...['--optimizer', 'adamw', '--lr', '0.003', '--seed', '7', '--shift', '2', '--patience', '4'],
      ...['--schedule', 'step', '--warmup', '10', '--steps-per-run', '8', '--spin', '--threads', '2'],
      ...['--task', 'dense', '--checkpoint-dir', 'ck', '--blank-weight', '0.3', '--hard-weight', '0.5'],
    ]);
    expect(r).toMatchObject({ labels: 'y.npy', valData: 'vx.npy', valLabels: 'vy.npy', task: 'dense' });
    expect(r.images).toEqual({ width: 320, height: 48, mean: [0.5, 0.5, 0.5], std: [0.25] });
    expect(r.train).toMatchObject({
      epochs: 3,
      batch: 32,
      seed: 7,
      shift: 2,
      patience: 4,
      stepsPerRun: 8,
      intraOpThreads: 2,
      allowSpinning: true,
      checkpointDir: 'ck',
      loss: { temperature: 2, alpha: 0.5, blankWeight: 0.3, hardWeight: 0.5 },
      optimizer: { kind: 'adamw', lr: 0.003 },
      schedule: { kind: 'step', warmupSteps: 10 },
    });
  });

  it('refuses bad values with INPUT_INVALID naming the flag', () => {
    for (const [argv, flag] of [
      [['--optimizer', 'lbfgs'], '--optimizer'],
      [['--schedule', 'linear'], '--schedule'],
      [['--task', 'boxes'], '--task'],
      [['--alpha', '1.5'], '--alpha'],
      [['--epochs', '0'], '--epochs'],
      [['--image-size', '320'], '--image-size'],
      [['--image-mean', '0.5,x'], '--image-mean'],
      [['--temperature', '0'], '--temperature'],
      [['--blank-weight', '-1'], '--blank-weight'],
      [['--hard-weight', '-0.5'], '--hard-weight'],
    ] as const) {
      expect(codeOf([...argv])).toMatch(new RegExp(`^INPUT_INVALID: ${flag}`));
    }
  });
});

describe('distill summary', () => {
  const base = { output: 's.onnx', parameters: 1000, bytes: 4000, samplesPerSecond: 123.4 };
  it('gives the validation scores it has', () => {
    expect(summaryLine({ ...base, accuracy: 0.985, agreement: 0.99 })).toBe(
      'wrote s.onnx: 1000 parameters, 4000 bytes; accuracy 98.50 %, agreement 99.00 %, 123 samples/s\n',
    );
    expect(summaryLine({ ...base, accuracy: null, agreement: 0.9 })).toContain('; agreement 90.00 %,');
  });
  it('says how to get them when nothing was validated', () => {
    expect(summaryLine({ ...base, accuracy: null, agreement: null })).toContain(
      'accuracy and agreement not measured (no validation data: give --val-data)',
    );
  });
});
