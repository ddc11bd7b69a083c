import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../../agent/config.js';
import { clearPendingEnrollRequest, pendingEnrollRequestId } from '../../../agent/enroll.js';
import { enrollDevice } from '../../../agent/startup.js';
import { createLogger } from '../../../shared/logger.js';
import { enrollCredentials, enrollRequestTopic, PROTOCOL_VERSION } from '../../../shared/protocol/index.js';
import { waitFor } from '../../faults/procs.js';
import { startTestCloud, type TestCloud } from '../support/test-cloud.js';

const hardware = {
  hostname: 'lost-reply',
  arch: 'x64',
  platform: 'linux',
  cpuModel: 'test',
  cpuCores: 2,
  memoryBytes: 2e9,
  gpu: null,
  executionProviders: ['cpu' as const],
  onnxruntimeVersion: '1.30.0',
  nodeVersion: process.version,
};
const logger = createLogger({ name: 'test', level: 'silent' });

// An agent whose enrollment reply was lost (it stopped, or the connection dropped, after the
// cloud had enrolled it) asks again after a restart: it must get the device the cloud created,
// not use the token a second time and leave that device orphaned.
describe('enrollment after a lost reply', () => {
  let t: TestCloud;
  let dataDir: string;

  beforeAll(async () => {
    t = await startTestCloud({}, 'fleetml-enroll-retry-');
    dataDir = await mkdtemp(join(tmpdir(), 'fleetml-agent-'));
  });
  afterAll(async () => {
    await t?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('keeps the request id of an enrollment under way across restarts, per token', async () => {
    const dir = join(dataDir, 'ids');
    const id = await pendingEnrollRequestId(dir, 'enr_one');
    expect(await pendingEnrollRequestId(dir, 'enr_one')).toBe(id);
    const other = await pendingEnrollRequestId(dir, 'enr_two');
    expect(other).not.toBe(id);
    await clearPendingEnrollRequest(dir);
    expect(await readdir(dir)).toEqual([]);
    expect(await pendingEnrollRequestId(dir, 'enr_two')).not.toBe(other);
  });

  it('gets the identity the cloud created, and the single-use token is not used twice', async () => {
    // issueEnrollToken: on Mosquitto's dynamic security the token also needs its broker client.
    const { token } = await t.cloud.services.issueEnrollToken({ uses: 1 });
    const requestId = await pendingEnrollRequestId(dataDir, token);
    // First attempt: the request reaches the cloud, the agent goes away before the reply.
    const credentials = enrollCredentials(token);
    const first = await mqtt.connectAsync(t.cloud.mqttUrl, { ...credentials, reconnectPeriod: 0 });
    const request = { v: PROTOCOL_VERSION, requestId, token, agentVersion: 'test', hardware };
    await first.publishAsync(enrollRequestTopic(credentials.clientId), JSON.stringify(request), { qos: 1 });
    await first.endAsync();
    const created = await waitFor('the cloud to enroll the first attempt', async () => {
      const list = (await t.api('GET', '/api/devices')).body;
      const rows = (Array.isArray(list) ? list : list.devices) as Array<{ id: string; name: string }>;
      return rows.find((d) => d.name === 'lost-reply');
    });

    // After the restart the agent enrolls again: as the same request, read from its data directory.
    const config = resolveConfig({
      cloudUrl: t.cloud.mqttUrl,
      enrollToken: token,
      dataDir,
      name: 'lost-reply',
    });
    const identity = await enrollDevice(config, undefined, ['cpu'], logger, AbortSignal.timeout(60_000));
    expect(identity.deviceId).toBe(created.id);
    const list = (await t.api('GET', '/api/devices')).body;
    const rows = (Array.isArray(list) ? list : list.devices) as Array<{ name: string }>;
    expect(rows.filter((d) => d.name === 'lost-reply')).toHaveLength(1);
    // Saved, and the pending request forgotten (a later enrollment is a new request).
    expect((await readdir(dataDir)).sort()).toEqual(['identity.json', 'ids']);
    // The identity works: the device connects with it.
    const device = await mqtt.connectAsync(t.cloud.mqttUrl, {
      clientId: `fleetml-${identity.deviceId}`,
      username: identity.deviceId,
      password: identity.secret,
      reconnectPeriod: 0,
    });
    await device.endAsync();
  }, 120_000);
});
