import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { type BlockHeader, decodeBlockFrame, deviceTopic } from '../../shared/protocol/index.js';

/** Connects with a device's own credentials (read from its identity file), as a stolen device would. */
export async function connectAsDevice(
  url: string,
  dataDir: string,
): Promise<{ client: MqttClient; deviceId: string }> {
  const identity = JSON.parse(await readFile(join(dataDir, 'identity.json'), 'utf8'));
  const client = await mqtt.connectAsync(url, {
    clientId: `fleetml-${identity.deviceId}`,
    username: identity.deviceId,
    password: identity.secret,
    reconnectPeriod: 0,
  });
  return { client, deviceId: identity.deviceId };
}

/** Collects every block frame the device receives. */
export async function collectBlocks(
  client: MqttClient,
  deviceId: string,
): Promise<Array<{ header: BlockHeader; data: Buffer }>> {
  const frames: Array<{ header: BlockHeader; data: Buffer }> = [];
  client.on('message', (topic, payload) => {
    if (topic === deviceTopic(deviceId, 'transfer/blk')) frames.push(decodeBlockFrame(payload));
  });
  await client.subscribeAsync(deviceTopic(deviceId, 'transfer/blk'), { qos: 0 });
  return frames;
}

/** Polls until `probe` gives a value (the fleet harness's waitFor, under this file's name). */
export { waitFor as until } from '../integration/e2e/fleet-harness.js';
