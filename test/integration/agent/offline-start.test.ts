import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Downloader } from '../../../agent/transfer/downloader.js';
import { MqttTransport } from '../../../agent/transport/mqtt.js';
import { sha256Hex } from '../../../shared/hash.js';
import { createLogger } from '../../../shared/logger.js';
import { FakeCloud, startAedes } from './fake-cloud.js';
import { buildMlp } from './fixtures.js';

// A transfer that starts while the link is down (the broker restarts just as a target
// arrives) must begin as soon as the link is back, not after the stall timeout.
describe('transfer started while offline', () => {
  let broker: Awaited<ReturnType<typeof startAedes>> | undefined;
  let cloud: FakeCloud | undefined;
  let transport: MqttTransport | undefined;
  let dir: string | undefined;
  afterAll(async () => {
    transport?.destroy();
    await cloud?.close();
    await broker?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('asks for its blocks on reconnect', async () => {
    broker = await startAedes();
    const port = broker.port;
    cloud = await FakeCloud.start(broker.url);
    const model = buildMlp({ inputs: 256, hidden: 256, seed: 5 });
    await cloud.store.put(model);
    dir = await mkdtemp(join(tmpdir(), 'fleetml-offline-'));
    const logger = createLogger({ name: 't', level: 'silent' });
    transport = new MqttTransport({
      url: broker.url,
      clientId: 'offline-dev',
      reconnectPeriodMs: 100,
      logger,
    });
    await transport.waitConnected(10_000);
    const downloader = new Downloader({ transport, deviceId: 'offline-dev', dir, logger, stallMs: 20_000 });
    await broker.close();
    await new Promise<void>((resolve) => transport!.onClose(resolve));
    const started = Date.now();
    const download = downloader.download({ sha256: sha256Hex(model), size: model.length, blockSize: 4096 });
    await new Promise((r) => setTimeout(r, 300));
    broker = await startAedes(port);
    const { path } = await download;
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(sha256Hex(await readFile(path))).toBe(sha256Hex(model));
  });
});
