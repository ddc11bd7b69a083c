import { describe, expect, it } from 'vitest';
import { planCompression, recommendVariant } from '../../../../cloud/compression/profiles/planner.js';
import { ProfileRegistry } from '../../../../cloud/compression/profiles/registry.js';

const profiles = new ProfileRegistry();

describe('compression planner', () => {
  it('always sets original, quantized, distilled and distilled-then-quantized side by side', () => {
    const plan = planCompression({
      profile: profiles.get('rpi4'),
      teacherBytes: 1e6,
      teacherParameters: 250_000,
    });
    expect(plan.variants.map((v) => v.name)).toEqual(['original', 'int8', 'student', 'student-int8']);
    expect(plan.student).toBe('mlp@62500');
  });

  it('adds FP16 for GPU profiles and symmetric S8S8 INT8 for TensorRT', () => {
    const plan = planCompression({
      profile: profiles.get('jetson-orin-nano'),
      teacherBytes: 1e6,
      teacherParameters: 250_000,
    });
    expect(plan.variants.map((v) => v.name)).toContain('fp16');
    expect(plan.variants.find((v) => v.name === 'int8')?.why).toMatch(/S8S8/);
  });

  it('proposes shrink:0.5 for a teacher that is not an MLP, narrower when over the budget', () => {
    const cnnOps = ['Conv', 'BatchNormalization', 'Relu', 'MaxPool', 'Flatten', 'Gemm'];
    const base = { profile: profiles.get('rpi4'), teacherBytes: 1e6, teacherParameters: 250_000 };
    expect(planCompression({ ...base, teacherOpTypes: cnnOps }).student).toBe('shrink:0.5');
    expect(planCompression({ ...base, teacherOpTypes: ['Flatten', 'Gemm', 'Relu', 'Gemm'] }).student).toBe(
      'mlp@62500',
    );
    const tiny = { ...profiles.get('rpi4'), maxModelBytes: 40_000 };
    // sqrt(40 kB / 1 MB) = 0.2: the shrunk graph has about 4 % of the bytes.
    expect(planCompression({ ...base, profile: tiny, teacherOpTypes: cnnOps }).student).toBe('shrink:0.2');
    expect(planCompression({ ...base, teacherOpTypes: cnnOps, student: 'cnn:8' }).student).toBe('cnn:8');
  });

  it('sizes the student by the profile budget when the model is over it', () => {
    const tiny = { ...profiles.get('rpi4'), maxModelBytes: 40_000 };
    const plan = planCompression({ profile: tiny, teacherBytes: 200_000, teacherParameters: 50_000 });
    expect(plan.student).toBe('mlp@10000');
    expect(plan.variants.find((v) => v.name === 'student')?.why).toMatch(/over the profile/);
  });
});

describe('closed-loop recommendation', () => {
  const variants = [
    { name: 'original', accepted: true, latencyMs: 1.0 },
    { name: 'int8', accepted: true, latencyMs: 0.5 },
    { name: 'student', accepted: false, latencyMs: 0.2 },
  ];

  it('picks the fastest variant within the budget from the cloud measurement', () => {
    expect(recommendVariant(variants)).toBe('int8');
  });

  it('prefers FP32 where devices of the profile measured INT8 slower', () => {
    const measured = [
      { ...variants[0], deviceLatencyMs: 10 },
      { ...variants[1], deviceLatencyMs: 14 },
      variants[2],
    ];
    expect(recommendVariant(measured)).toBe('original');
  });

  it('recommends nothing when no variant is within the budget', () => {
    expect(recommendVariant([{ name: 'student', accepted: false, latencyMs: 1 }])).toBeNull();
  });
});
