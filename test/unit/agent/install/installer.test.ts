import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Installer } from '../../../../agent/install/installer.js';
import { StateStore } from '../../../../agent/store/agent-state.js';
import { createLogger } from '../../../../shared/logger.js';
import { buildMlp, makeManifest } from '../../../integration/agent/fixtures.js';

const logger = createLogger({ name: 'test', level: 'silent' });

describe('A/B installer', () => {
  let dir: string;
  let state: StateStore;
  const make = (minFreeDiskBytes = 0) =>
    new Installer({
      dataDir: dir,
      state,
      ep: 'cpu',
      profile: {},
      bench: { runs: 3, warmupRuns: 1 },
      logger,
      minFreeDiskBytes,
    });

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetml-inst-'));
    state = new StateStore(dir);
    await state.load();
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  const stage = async (name: string, bytes: Buffer) => {
    await mkdir(join(dir, 'transfers'), { recursive: true });
    const path = join(dir, 'transfers', name);
    await writeFile(path, bytes);
    return path;
  };

  it('activates a good model in the inactive slot and survives a bad one there', async () => {
    const installer = make();
    const good = buildMlp({ seed: 1 });
    const r = await installer.install(makeManifest(good), await stage('a.part', good), null, () => {});
    expect(r.slot).toBe('a');
    expect(state.state.activeSlot).toBe('a');
    expect(r.bench.runs).toBe(3);

    const junk = Buffer.from('not onnx at all');
    await expect(
      installer.install(makeManifest(junk, { version: 2 }), await stage('b.part', junk), null, () => {}),
    ).rejects.toMatchObject({ code: 'RUNTIME_LOAD' });
    expect(state.state.activeSlot).toBe('a');
    expect(state.active()?.sha256).toBe(makeManifest(good).sha256);
    expect(state.state.slots.b).toBeNull();
    // The state on disk says the same after a restart.
    const reloaded = new StateStore(dir);
    expect((await reloaded.load()).activeSlot).toBe('a');
  });

  it('finds a model already in the inactive slot (whole, right SHA-256) so that it is not fetched again', async () => {
    const installer = make();
    const a = buildMlp({ seed: 1 });
    const b = buildMlp({ seed: 2 });
    await installer.install(makeManifest(a), await stage('a.part', a), null, () => {});
    await installer.install(makeManifest(b, { version: 2 }), await stage('b.part', b), null, () => {});
    // b is active; a stays in the inactive slot with its manifest, as after a kill during install.
    const path = await installer.verifiedInSlot(makeManifest(a));
    expect(path).toBe(installer.modelPath('a'));
    expect(await installer.verifiedInSlot(makeManifest(buildMlp({ seed: 3 })))).toBeNull();
    const tampered = Buffer.from(a);
    tampered[tampered.length - 1] ^= 0xff;
    await writeFile(installer.modelPath('a'), tampered);
    expect(await installer.verifiedInSlot(makeManifest(a))).toBeNull();
  });

  it('frees stale downloads and the inactive slot, then refuses what still cannot fit', async () => {
    const installer = make(Number.MAX_SAFE_INTEGER);
    await stage('stale.part', Buffer.alloc(1024));
    await mkdir(join(dir, 'slots', 'b'), { recursive: true });
    await writeFile(join(dir, 'slots', 'b', 'model.onnx'), Buffer.alloc(1024));
    await expect(installer.ensureSpace(1000, 'f'.repeat(64))).rejects.toMatchObject({
      code: 'TRANSFER_NO_SPACE',
    });
    expect(await readdir(join(dir, 'transfers'))).toEqual([]);
    expect(await readdir(join(dir, 'slots'))).toEqual([]);
  });

  it('lets a download proceed when space suffices', async () => {
    await expect(make(0).ensureSpace(1000, 'f'.repeat(64))).resolves.toBeUndefined();
  });
});
