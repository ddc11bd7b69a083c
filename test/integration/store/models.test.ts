import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { expect, it } from 'vitest';
import { LocalArtifactStore } from '../../../cloud/fleet/delivery/local-artifacts.js';
import { hashSecret } from '../../../cloud/fleet/identity/secrets.js';
import { DeviceRepository } from '../../../cloud/fleet/inventory/devices.js';
import { ModelRegistry } from '../../../cloud/fleet/inventory/models.js';
import { type FleetStore, migrateFleetStore } from '../../../cloud/fleet/store/kysely.js';
import { describeEachBackend } from '../support/backends.js';

const SAMPLE = readFileSync(new URL('../../../cloud/samples/mnist-mlp.onnx', import.meta.url));
const artifacts = () => new LocalArtifactStore(mkdtempSync(join(tmpdir(), 'fleetml-models-')));

describeEachBackend('model registry', (backend) => {
  it('numbers releases and stamps them in the same order; variants share both', async () => {
    const models = new ModelRegistry(await backend.open(), artifacts());
    const before = Date.now();
    const first = await models.add(SAMPLE, { name: 'mnist' });
    const variant = await models.add(SAMPLE, { name: 'mnist', variant: 'int8', sourceModelId: first.id });
    const second = await models.add(SAMPLE, { name: 'mnist', variant: 'retrained' });
    expect([first.release, variant.release, second.release]).toEqual([1, 1, 2]);
    expect(first.releaseStamp).toBeGreaterThanOrEqual(before);
    expect(variant.releaseStamp).toBe(first.releaseStamp);
    expect(second.releaseStamp).toBeGreaterThan(first.releaseStamp);
    expect(first).toMatchObject({ size: SAMPLE.length, sourceModelId: null, variant: 'fp32' });
    expect(await models.latestRelease('mnist')).toBe(2);
    expect(await models.highestReleaseStamp('mnist')).toBe(second.releaseStamp);
    expect(await models.latestRelease('other')).toBe(0);
    // The same bytes under the same name and variant are the same model.
    expect((await models.add(SAMPLE, { name: 'mnist' })).id).toBe(first.id);
    expect((await models.byName('mnist')).map((m) => m.id)).toEqual([second.id, first.id, variant.id]);
    expect((await models.find('mnist'))?.id).toBe(second.id);
    expect((await models.list()).map((m) => m.id).sort()).toEqual([first.id, second.id, variant.id].sort());
    await expect(models.get('nothing')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(
      models.add(SAMPLE, { name: 'mnist', variant: 'x', sourceModelId: variant.id }),
    ).rejects.toMatchObject({ code: 'INPUT_INVALID' });
  });

  it('keeps metrics and serving shapes', async () => {
    const models = new ModelRegistry(await backend.open(), artifacts());
    const model = await models.add(SAMPLE, { name: 'mnist' });
    await models.setMetrics(model.id, { accuracy: 0.97 });
    await models.setServingShapes(model.id, { input: [4, 1, 28, 28] });
    expect(await models.get(model.id)).toMatchObject({
      metrics: { accuracy: 0.97 },
      servingShapes: { input: [4, 1, 28, 28] },
      unresolvedDims: [],
    });
    await expect(models.setServingShapes(model.id, { nope: [1] })).rejects.toMatchObject({
      code: 'INPUT_INVALID',
    });
  });

  it('removes a model only when nothing uses it', async () => {
    const store = await backend.open();
    const models = new ModelRegistry(store, artifacts());
    const devices = new DeviceRepository(store);
    const original = await models.add(SAMPLE, { name: 'mnist' });
    const variant = await models.add(SAMPLE, { name: 'mnist', variant: 'int8', sourceModelId: original.id });
    await expect(models.remove(original.id)).rejects.toMatchObject({ code: 'CONFLICT' });
    await devices.create({
      id: 'd',
      name: 'd',
      secretHash: hashSecret('d'),
      profile: null,
      hardware: {} as never,
    });
    await devices.applyState('d', {
      v: 1,
      targetVersion: 1,
      phase: 'active',
      activeModel: { modelId: variant.id, sha256: variant.sha256, version: 1 },
      progress: null,
      error: null,
      at: new Date().toISOString(),
    });
    await expect(models.remove(variant.id)).rejects.toThrow(/used by 1 devices/);
    await devices.applyState('d', {
      v: 1,
      targetVersion: 2,
      phase: 'idle',
      activeModel: null,
      progress: null,
      error: null,
      at: new Date().toISOString(),
    });
    await models.remove(variant.id);
    await models.remove(original.id);
    expect(await models.list()).toEqual([]);
  });
});

async function tables(store: FleetStore): Promise<string[]> {
  return (await store.db.introspection.getTables()).map((t) => t.name);
}

describeEachBackend('fleet migration 0002 (one source of truth for releases)', (backend) => {
  it('moves delivered release numbers into models, never lowering one, in release order', async () => {
    const store = await backend.open({ migrateTo: '0001_fleet_baseline' });
    const at = (ms: number) => new Date(ms).toISOString();
    const model = (id: string, name: string, release: number | null, created: number, source?: string) => ({
      id,
      name,
      variant: source ? 'int8' : 'fp32',
      sha256: id.padEnd(64, '0'),
      size: 10,
      inputs: '[]',
      outputs: '[]',
      source_model_id: source ?? null,
      created_at: at(created),
      release,
    });
    await sql`INSERT INTO models (id, name, variant, sha256, size, inputs, outputs, source_model_id, created_at, release)
      VALUES ${sql.join(
        [
          model('o1', 'n', 1, 1000),
          model('v1', 'n', 1, 1500, 'o1'),
          model('o2', 'n', 2, 2000),
          model('o3', 'n', 3, 2500),
          model('legacy', 'm', null, 700),
        ].map((m) => sql`(${sql.join(Object.values(m))})`),
      )}`.execute(store.db);
    // Issue 12's numbers, assigned at first deployment: release 2 went out before release 1's variant.
    await sql`INSERT INTO model_releases (model_id, lineage, release) VALUES ('v1', 'n', 5000), ('o2', 'n', 3000)`.execute(
      store.db,
    );
    await migrateFleetStore(store);
    const rows = await store.db.selectFrom('models').select(['id', 'release_stamp']).orderBy('id').execute();
    expect(Object.fromEntries(rows.map((r) => [r.id, Number(r.release_stamp)]))).toEqual({
      legacy: 700,
      o1: 5000,
      v1: 5000,
      o2: 5001,
      o3: 5002,
    });
    expect(await tables(store)).not.toContain('model_releases');
  });
});
