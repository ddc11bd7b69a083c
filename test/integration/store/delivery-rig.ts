import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeModel, encodeModel } from '../../../cloud/compression/onnx/proto.js';
import { DeviceAudit } from '../../../cloud/fleet/delivery/device-audit.js';
import { GoldenService } from '../../../cloud/fleet/delivery/goldens.js';
import { LocalArtifactStore } from '../../../cloud/fleet/delivery/local-artifacts.js';
import { ManifestService, type SigningMode } from '../../../cloud/fleet/delivery/manifests.js';
import { TargetService } from '../../../cloud/fleet/delivery/targets.js';
import { hashSecret } from '../../../cloud/fleet/identity/secrets.js';
import { DeviceRepository } from '../../../cloud/fleet/inventory/devices.js';
import { ModelRegistry } from '../../../cloud/fleet/inventory/models.js';
import type { FleetStore } from '../../../cloud/fleet/store/kysely.js';
import { createLogger } from '../../../shared/logger.js';
import { type FleetKeyPair, generateFleetKeyPair, signTarget } from '../../../shared/manifest/index.js';
import type { TargetState } from '../../../shared/protocol/index.js';

export const SAMPLE = readFileSync(new URL('../../../cloud/samples/mnist-mlp.onnx', import.meta.url));
export const keys: FleetKeyPair = generateFleetKeyPair();

/** The sample model with `tag` in its doc string: distinct bytes, same graph. */
export function sampleVariant(tag: string): Uint8Array {
  const model = decodeModel(SAMPLE);
  model.docString = tag;
  return encodeModel(model);
}

/**
 * The delivery services of one cloud replica on `store`, as startCloud wires them (golden sets
 * computed at registration, manifests naming them, targets signed by the fleet key), with a
 * publisher that records what it was given.
 */
export function deliveryRig(
  store: FleetStore,
  options: { signing?: SigningMode; artifactsDir?: string } = {},
) {
  const artifacts = new LocalArtifactStore(
    options.artifactsDir ?? mkdtempSync(join(tmpdir(), 'fleetml-dlv-')),
  );
  const published: TargetState[] = [];
  const publisher = {
    publish: async (_topic: string, payload: Buffer) => void published.push(JSON.parse(payload.toString())),
  };
  const goldens = new GoldenService(store, artifacts, createLogger({ name: 'test', level: 'silent' }));
  const manifests = new ManifestService(store, {
    signing: options.signing ?? { mode: 'online', keys },
    golden: (id) => goldens.find(id),
  });
  const devices = new DeviceRepository(store);
  const models = new ModelRegistry(store, artifacts, (m, bytes) => goldens.register(m, bytes));
  const targets = new TargetService(store, publisher, manifests, {
    sign: (t) => signTarget(t, keys),
    devices,
    models,
  });
  const audit = new DeviceAudit(store, { targets, manifests });
  const addDevice = (id: string, profile: string | null = null) =>
    devices.create({ id, name: id, secretHash: hashSecret(id), profile, hardware: {} as never });
  return { artifacts, published, goldens, manifests, devices, models, targets, audit, addDevice };
}
