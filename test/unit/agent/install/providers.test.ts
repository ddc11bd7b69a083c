import { execFile } from 'node:child_process';
import { access, copyFile, mkdir, mkdtemp, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkModelInChild } from '../../../../agent/install/model-check.js';
import { resolveOnnxruntime } from '../../../../agent/runtime/onnxruntime-source.js';
import {
  chooseExecutionProvider,
  configureOnnxruntime,
  createSession,
  DEFAULT_SESSION_PROFILE,
} from '../../../../agent/runtime/ort.js';
import { precisionOfVariant, tensorRtEnvironment } from '../../../../agent/runtime/tensorrt.js';
import { isFleetError } from '../../../../shared/errors/index.js';
import { buildMlp } from '../../../integration/agent/fixtures.js';

const ROOT = resolve(import.meta.dirname, '../../../..');
const BUNDLED = join(ROOT, 'node_modules/onnxruntime-node');
const LIB = join(BUNDLED, 'bin/napi-v6/linux', process.arch, 'libonnxruntime.so.1');
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleetml-providers-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

function providers(args: string[]) {
  return new Promise<any>((done, fail) =>
    execFile(
      process.execPath,
      [join(ROOT, 'bin/fleetml.mjs'), 'agent', 'providers', '--json', ...args],
      { timeout: 120_000 },
      (error, stdout, stderr) => (error ? fail(new Error(stderr)) : done(JSON.parse(stdout))),
    ),
  );
}

describe('TensorRT settings: one engine cache for model check, install and probe', () => {
  const settings = { engineCacheDir: '/data/tensorrt/engines', timingCacheDir: '/data/tensorrt/timing' };
  it('caches engines and timings; FP16/INT8 flags follow the variant', () => {
    expect(tensorRtEnvironment(settings, 'int8')).toEqual({
      ORT_TENSORRT_ENGINE_CACHE_ENABLE: '1',
      ORT_TENSORRT_CACHE_PATH: '/data/tensorrt/engines',
      ORT_TENSORRT_TIMING_CACHE_ENABLE: '1',
      ORT_TENSORRT_GLOBAL_CACHE_PATH: '/data/tensorrt/timing',
      ORT_TENSORRT_FP16_ENABLE: '1',
      ORT_TENSORRT_INT8_ENABLE: '1',
    });
    expect(tensorRtEnvironment(settings, 'fp32')).toMatchObject({
      ORT_TENSORRT_FP16_ENABLE: '0',
      ORT_TENSORRT_INT8_ENABLE: '0',
    });
    expect(tensorRtEnvironment(settings, 'fp16')).toMatchObject({
      ORT_TENSORRT_FP16_ENABLE: '1',
      ORT_TENSORRT_INT8_ENABLE: '0',
    });
    expect(['fp32', 'int8', 'student-int8', 'fp16', undefined].map(precisionOfVariant)).toEqual([
      'fp32',
      'int8',
      'int8',
      'fp16',
      'fp32',
    ]);
  });
});

describe('a user-supplied onnxruntime (--onnxruntime)', () => {
  it('refuses a path that is neither a package nor libonnxruntime, clearly', async () => {
    for (const path of [join(dir, 'missing'), dir, join(ROOT, 'package.json')]) {
      const error = await resolveOnnxruntime(path, join(dir, 'work')).catch((e) => e);
      expect(isFleetError(error) && error.code).toBe('CONFIG_INVALID');
      expect(error.message).toContain('--onnxruntime');
    }
    expect((await resolveOnnxruntime(BUNDLED, join(dir, 'work'))).kind).toBe('package');
  });

  it('loads a libonnxruntime.so from its own directory and reports why CUDA/TensorRT did not load', async () => {
    const user = join(dir, 'jetson-lib');
    await mkdir(user);
    await copyFile(LIB, join(user, 'libonnxruntime.so.1'));
    const probe = await providers(['--onnxruntime', user, '--work-dir', join(dir, 'work-good')]);
    expect(probe.onnxruntime).toEqual({ kind: 'library', path: join(user, 'libonnxruntime.so.1') });
    expect(probe.available).toEqual(['cpu']);
    expect(probe.failures.tensorrt).toMatch(/\S/);
    expect(probe.failures.cuda).toMatch(/\S/);
    // --work-dir is where the binding is set up, beside a link to the user's library.
    const binding = join(dir, 'work-good/node_modules/onnxruntime-node/bin/napi-v6/linux', process.arch);
    expect(await readlink(join(binding, 'libonnxruntime.so.1'))).toBe(join(user, 'libonnxruntime.so.1'));
    await access(join(binding, 'onnxruntime_binding.node'));
  }, 150_000);

  it('a library that cannot load leaves no provider, with the loader’s reason (so the shim is what loads)', async () => {
    const bad = join(dir, 'bad-lib');
    await mkdir(bad);
    await writeFile(join(bad, 'libonnxruntime.so.1'), 'not a library');
    const probe = await providers(['--onnxruntime', bad, '--work-dir', join(dir, 'work-bad')]);
    expect(probe.available).toEqual([]);
    expect(probe.failures.cpu).toContain(join(dir, 'work-bad'));
    expect(probe.failures.cpu).toMatch(/too short|invalid ELF/);
  }, 150_000);
});

describe('TensorRT absent here: the fallback is clean', () => {
  it('auto falls back to CPU; asking for TensorRT is refused with the reason; sessions get the cache settings', async () => {
    const engines = join(dir, 'engines');
    configureOnnxruntime({ tensorRt: { engineCacheDir: engines, timingCacheDir: join(dir, 'timing') } });
    expect(await chooseExecutionProvider('auto')).toBe('cpu');
    const refused = await chooseExecutionProvider('tensorrt').catch((e) => e);
    expect(isFleetError(refused) && refused.code).toBe('RUNTIME_LOAD');
    expect(refused.message).toMatch(/execution provider tensorrt does not load here: \S/);
    // Whatever onnxruntime makes of it, the session was asked for with the engine cache set.
    await createSession(buildMlp(), { ep: 'tensorrt', precision: 'int8' }).then(
      (s) => s.release(),
      (e) => expect(isFleetError(e) && e.code).toBe('RUNTIME_LOAD'),
    );
    expect(process.env.ORT_TENSORRT_CACHE_PATH).toBe(engines);
    expect(process.env.ORT_TENSORRT_INT8_ENABLE).toBe('1');
  }, 150_000);

  it('the isolated model check refuses TensorRT with a coded error, not a crash', async () => {
    const model = join(dir, 'mlp.onnx');
    await writeFile(model, buildMlp());
    const profile = { ...DEFAULT_SESSION_PROFILE, ep: 'tensorrt' as const, precision: 'int8' as const };
    const result = await checkModelInChild(model, { timeoutMs: 120_000, dynamicDim: 1, profile }).catch(
      (e) => e,
    );
    // onnxruntime-node's x64 build falls back to CPU or refuses; either way no crash and no hang.
    if (isFleetError(result)) expect(result.code).toBe('RUNTIME_LOAD');
    else expect(result.loadMs).toBeGreaterThanOrEqual(0);
  }, 150_000);
});
