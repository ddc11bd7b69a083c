import { mkdtemp, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { modelDirName, StablePaths } from '../../../../agent/serve/index.js';
import { createLogger } from '../../../../shared/logger.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleetml-stable-'));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

const logger = createLogger({ name: 'test', level: 'silent' });
const entry = (version: string) => ({
  name: 'mnist-mlp',
  version,
  modelId: `m-${version}`,
  sha256: 'ab'.repeat(32),
});

describe('stable path for applications', () => {
  it('current.onnx follows each activation and models.json says what is active', async () => {
    const paths = new StablePaths({ dataDir: dir, logger });
    const slotA = join(dir, 'a.onnx');
    const slotB = join(dir, 'b.onnx');
    await writeFile(slotA, 'model A');
    await writeFile(slotB, 'model B');
    const current = join(dir, 'models', 'mnist-mlp', 'current.onnx');

    await paths.publish(entry('1'), slotA);
    expect(await readFile(current, 'utf8')).toBe('model A');
    await paths.publish(entry('2'), slotB);
    expect(await readFile(current, 'utf8')).toBe('model B');
    expect(await readlink(current)).toBe(slotB);

    const models = JSON.parse(await readFile(join(dir, 'models', 'models.json'), 'utf8'));
    expect(models.models['mnist-mlp']).toMatchObject({
      name: 'mnist-mlp',
      version: '2',
      modelId: 'm-2',
      path: current,
    });
    // Rollback: the older slot again.
    await paths.publish(entry('1'), slotA);
    expect(await readFile(current, 'utf8')).toBe('model A');
  });

  it('runs the activation hook with the model in its environment; a failing hook changes nothing', async () => {
    const out = join(dir, 'hook.txt');
    const slot = join(dir, 'a.onnx');
    await writeFile(slot, 'model A');
    const paths = new StablePaths({
      dataDir: dir,
      logger,
      hookCommand: `echo "$FLEETML_MODEL_NAME $FLEETML_MODEL_VERSION $FLEETML_MODEL_PATH" >> ${out}`,
    });
    await paths.publish(entry('3'), slot);
    expect((await readFile(out, 'utf8')).trim()).toBe(
      `mnist-mlp 3 ${join(dir, 'models', 'mnist-mlp', 'current.onnx')}`,
    );

    const failing = new StablePaths({ dataDir: dir, logger, hookCommand: 'exit 3' });
    await failing.publish(entry('4'), slot);
    const models = JSON.parse(await readFile(join(dir, 'models', 'models.json'), 'utf8'));
    expect(models.models['mnist-mlp'].version).toBe('4');
  });

  it('model names cannot escape the models directory', () => {
    expect(modelDirName('../etc')).toBe('.._etc');
    expect(modelDirName('..')).toBe('_..');
    expect(modelDirName('a/b c')).toBe('a_b_c');
  });
});
