import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fleetml } from '../../support/fleetml-cli.js';
import { embeddedOnly } from '../support/backend-mode.js';
import { startTestCloud, type TestCloud } from '../support/test-cloud.js';

const only = embeddedOnly('the TLS listener is the embedded broker’s');

// `fleetml simulate --ca <file>` against a cloud serving mqtts (what `fleetml cloud start` does by
// default): with the fleet CA the simulated devices enroll and report; without it TLS refuses
// the cloud's certificate and none comes online.
describe.skipIf(only.skip)(only.title('fleetml simulate --ca'), () => {
  let t: TestCloud;
  beforeAll(async () => {
    t = await startTestCloud({ tls: true }, 'fleetml-sim-tls-');
  });
  afterAll(async () => {
    await t?.stop();
  });

  const simulate = async (extra: string[]) => {
    const { token } = await t.cloud.services.tokens.createEnrollToken({ uses: 2 });
    const r = await fleetml(
      [
        ...['simulate', '--cloud', t.cloud.mqttUrl, '--enroll-token', token, '--devices', '2'],
        ...['--duration', '6', '--interval', '1', '--ramp', '1', '--json', ...extra],
      ],
      { timeout: 150_000 },
    );
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout);
  };

  it('pins the fleet CA: devices enroll over mqtts and their telemetry is stored', async () => {
    expect(t.cloud.mqttUrl).toMatch(/^mqtts:\/\//);
    const before = (await t.api('GET', '/api/fleet/health')).body.telemetryRecords;
    const result = await simulate([
      '--ca',
      join(t.dir, 'cloud', 'tls', 'ca.pem'),
      '--name-prefix',
      'tls-sim',
    ]);
    expect(result).toMatchObject({ devices: 2, online: 2 });
    expect(result.recordsAcked).toBeGreaterThan(0);
    const after = (await t.api('GET', '/api/fleet/health')).body.telemetryRecords;
    expect(after - before).toBe(result.recordsAcked);
  }, 180_000);

  it('without --ca no device gets past TLS', async () => {
    const result = await simulate(['--name-prefix', 'no-ca-sim']);
    expect(result).toMatchObject({ devices: 2, online: 0, recordsAcked: 0 });
    const named = (await t.cloud.services.devices.list()).filter((d) => d.name.startsWith('no-ca-sim'));
    expect(named).toEqual([]);
  }, 180_000);

  it('a --ca that cannot be read is FILE_NOT_FOUND', async () => {
    const r = await fleetml([
      ...['simulate', '--cloud', t.cloud.mqttUrl, '--enroll-token', 'enr_x', '--devices', '1'],
      ...['--ca', join(t.dir, 'missing.pem')],
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error FILE_NOT_FOUND: cannot read --ca /m);
  }, 60_000);
});
