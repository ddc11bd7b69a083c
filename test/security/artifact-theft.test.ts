import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../shared/hash.js';
import { deviceTopic, encodeJson } from '../../shared/protocol/index.js';
import { buildMlp } from '../integration/agent/fixtures.js';
import { startTestAgent, type TestAgent } from '../integration/agent/harness.js';
import { startTestCloud, type TestCloud } from '../integration/support/test-cloud.js';
import { collectBlocks, connectAsDevice, until } from './attack-support.js';

// Finding 1 of issue 12: device B, with its own valid credentials, asks the transfer server for
// every block of an artifact that only device A's target names. It must get no block, and the
// refusal must read exactly like the answer for an artifact that does not exist.
describe('attack: artifact theft by a second enrolled device', () => {
  let t: TestCloud;
  let a: TestAgent;
  let b: TestAgent;

  beforeAll(async () => {
    t = await startTestCloud({}, 'fleetml-theft-');
    // issueEnrollToken: on Mosquitto's dynamic security a token also needs its broker client.
    a = await startTestAgent(t.cloud.mqttUrl, (await t.cloud.services.issueEnrollToken()).token);
    b = await startTestAgent(t.cloud.mqttUrl, (await t.cloud.services.issueEnrollToken()).token);
  });
  afterAll(async () => {
    await a?.agent.stop();
    await b?.agent.stop();
    await t?.stop();
    for (const x of [a, b]) if (x) await rm(x.dataDir, { recursive: true, force: true });
  });

  it('gives B no block of A-only artifacts; forbidden and unknown answer alike', async () => {
    const secret = buildMlp({ seed: 41, hidden: 64 });
    const model = await t.cloud.services.models.add(secret, { name: 'a-only' });
    await t.cloud.services.targets.setModel(a.agent.identity.deviceId, model);
    await until(
      'A runs the model',
      async () =>
        (await t.cloud.services.devices.get(a.agent.identity.deviceId)).activeSha256 === model.sha256,
      60_000,
    );
    const golden = (await t.cloud.services.targets.current(a.agent.identity.deviceId))?.model?.manifest
      .golden;

    // B stops its agent and speaks for itself with its own credentials.
    await b.agent.stop();
    const { client, deviceId } = await connectAsDevice(t.cloud.mqttUrl, b.dataDir);
    try {
      const frames = await collectBlocks(client, deviceId);
      const ask = async (sha256: string) => {
        const before = frames.length;
        const blocks = Array.from({ length: 16 }, (_, i) => i);
        await client.publishAsync(
          deviceTopic(deviceId, 'transfer/req'),
          encodeJson({ v: 1, sha256, blocks, blockSize: 4096 }),
          { qos: 1 },
        );
        await until(`an answer about ${sha256.slice(0, 8)}`, () => frames.length > before, 15_000);
        // Give the server time to send everything it would send.
        await new Promise((r) => setTimeout(r, 1000));
        return frames.slice(before);
      };
      const stolen = [model.sha256, ...(golden ? [golden.sha256] : [])];
      for (const sha of stolen) {
        const answer = await ask(sha);
        expect(answer.filter((f) => f.data.length > 0)).toEqual([]);
        expect(answer.every((f) => f.header.error)).toBe(true);
      }
      const unknown = sha256Hex(Buffer.from('no such artifact'));
      const [forbidden] = await ask(model.sha256);
      const [missing] = await ask(unknown);
      // Same code, same message once the hash itself is blanked out: no existence oracle.
      const blank = (f: typeof forbidden, sha: string) => ({
        ...f.header,
        sha256: 'x',
        error: { ...f.header.error!, message: f.header.error!.message.replaceAll(sha, 'x') },
      });
      expect(blank(forbidden, model.sha256)).toEqual(blank(missing, unknown));
    } finally {
      await client.endAsync(true);
    }
  });
});
