import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateFleetKeyPair } from '../../shared/manifest/index.js';
import { FakeCloud, startAedes } from '../integration/agent/fake-cloud.js';
import { buildMlp, makeManifest, makeTarget } from '../integration/agent/fixtures.js';
import { startTestAgent } from '../integration/agent/harness.js';

// Finding 3 of issue 12: a rogue (or intercepted) broker answers the enrollment itself and
// leaves the fleet key out, or puts its own in. The agent holds the real key's fingerprint from
// out of band (inside the enrollment token, or --fleet-key) and must refuse to enroll; an agent
// that holds no key must never install an unsigned model.
describe('attack: a rogue broker strips or swaps the fleet key at enrollment', () => {
  const fleet = generateFleetKeyPair();
  const fingerprint = createHash('sha256').update(Buffer.from(fleet.publicKey, 'base64')).digest('base64url');
  let broker: Awaited<ReturnType<typeof startAedes>>;
  let rogue: FakeCloud;
  const dirs: string[] = [];

  beforeAll(async () => {
    broker = await startAedes();
  });
  afterAll(async () => {
    await rogue?.close();
    await broker?.close();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  const newDir = async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetml-rogue-'));
    dirs.push(dir);
    return dir;
  };

  async function expectRefused(offeredKey: string | undefined, token: string, fleetKey?: string) {
    rogue = await FakeCloud.start(broker.url);
    rogue.fleetPublicKey = offeredKey;
    rogue.token = token;
    const dir = await newDir();
    const started = startTestAgent(broker.url, token, fleetKey ? { fleetKey } : {}, dir).then(
      async (t) => {
        await t.agent.stop();
        return 'enrolled';
      },
      (error) => error,
    );
    const outcome = await started;
    await rogue.close();
    expect(outcome).toMatchObject({ code: 'ENROLL_KEY' });
  }

  it('refuses to enroll when the reply carries no fleet key (token pins the fingerprint)', async () => {
    await expectRefused(undefined, `enr_${randomBytes(24).toString('base64url')}.${fingerprint}`);
  });

  it('refuses to enroll when the reply carries another key (token pins the fingerprint)', async () => {
    await expectRefused(
      generateFleetKeyPair().publicKey,
      `enr_${randomBytes(24).toString('base64url')}.${fingerprint}`,
    );
  });

  it('refuses to enroll when the reply carries another key than --fleet-key', async () => {
    await expectRefused(
      generateFleetKeyPair().publicKey,
      `enr_${randomBytes(24).toString('base64url')}`,
      fleet.publicKey,
    );
  });

  it('never installs an unsigned model, even on a device enrolled without a key', async () => {
    rogue = await FakeCloud.start(broker.url);
    const dir = await newDir();
    const deviceId = `dev-rogue-${randomBytes(3).toString('hex')}`;
    // An identity as an older agent wrote it: no fleet key was pinned.
    await writeFile(
      join(dir, 'identity.json'),
      JSON.stringify({
        deviceId,
        secret: randomBytes(16).toString('hex'),
        profile: null,
        fleetPublicKey: null,
        enrolledAt: new Date().toISOString(),
      }),
    );
    const t = await startTestAgent(broker.url, '', {}, dir);
    try {
      const model = buildMlp({ seed: 61 });
      await rogue.store.put(model);
      const manifest = makeManifest(model);
      await rogue.client.publishAsync(
        `fleetml/v1/d/${deviceId}/target`,
        Buffer.from(JSON.stringify(makeTarget(deviceId, 1, manifest))),
        { qos: 1, retain: true },
      );
      // It either refuses (a coded event) or installs (a benchmark): wait for whichever comes.
      await rogue.waitFor(
        () =>
          rogue.events.some((e) => e.deviceId === deviceId && e.event.level === 'error') ||
          rogue.bench.length > 0,
        30_000,
        'the device to decide',
      );
      expect(rogue.bench).toEqual([]);
      expect(rogue.events.map((e) => e.event.code)).toContain('TARGET_SIGNATURE');
      const last = rogue.states.filter((s) => s.deviceId === deviceId).at(-1);
      expect(last?.report.activeModel ?? null).toBeNull();
    } finally {
      await t.agent.stop();
      await rogue.close();
    }
  });
});
