import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLOUD_USERNAME } from '../../../cloud/fleet/broker/acl.js';
import { fleetml } from '../../support/fleetml-cli.js';
import { mosquittoBinary } from '../agent/mosquitto.js';
import { DynsecMosquitto } from '../support/external-broker.js';
import { startTestCloud, type TestCloud } from '../support/test-cloud.js';

const skip = mosquittoBinary() || process.env.CI ? null : 'mosquitto is not installed (.ci/run installs it)';

// `fleetml simulate` against the broker README and docs/scale.md describe for replicas: Mosquitto
// as `fleetml broker mosquitto-config` writes it (dynamic security: no shared `enroll` user, only
// the client each token becomes). The simulator used to log in as the shared user only, and not
// one device enrolled there.
describe.skipIf(skip)(
  `fleetml simulate through Mosquitto with dynamic security${skip ? ` - skipped: ${skip}` : ''}`,
  () => {
    let broker: DynsecMosquitto;
    let t: TestCloud;
    beforeAll(async () => {
      broker = await DynsecMosquitto.start();
      t = await startTestCloud(
        {
          mqttUrl: broker.url,
          mqttUsername: CLOUD_USERNAME,
          mqttPassword: broker.cloudPassword,
          mosquittoDynsec: true,
        },
        'fleetml-sim-dynsec-',
      );
    }, 120_000);
    afterAll(async () => {
      await t?.stop();
      await broker?.close();
    });

    it('enrolls every device with the token (one at a time) and stores what they report', async () => {
      // Through the API, as `fleetml tokens enroll` does: that also makes the token's broker client.
      const { token } = (await t.api('POST', '/api/enroll-tokens', { uses: 3 })).body;
      const before = (await t.api('GET', '/api/fleet/health')).body.telemetryRecords;
      const r = await fleetml(
        [
          ...['simulate', '--cloud', broker.url, '--enroll-token', token, '--devices', '3'],
          ...['--duration', '10', '--interval', '1', '--ramp', '1', '--name-prefix', 'dynsec-sim', '--json'],
        ],
        { timeout: 150_000 },
      );
      expect(r.code, r.stderr).toBe(0);
      const result = JSON.parse(r.stdout);
      expect(result).toMatchObject({ devices: 3, enrolled: 3, enrollFailed: 0, online: 3 });
      expect(result.recordsAcked).toBeGreaterThan(0);
      const after = (await t.api('GET', '/api/fleet/health')).body.telemetryRecords;
      expect(after - before).toBe(result.recordsAcked);
      const named = (await t.cloud.services.devices.list()).filter((d) => d.name.startsWith('dynsec-sim'));
      expect(named).toHaveLength(3);
    }, 180_000);
  },
);
