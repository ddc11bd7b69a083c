import { access, mkdtemp, rm } from 'node:fs/promises';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EmbeddedBroker, startEmbeddedBroker } from '../../../cloud/fleet/broker/embedded.js';
import { createLogger } from '../../../shared/logger.js';
import { fleetml } from '../../support/fleetml-cli.js';

// `fleetml agent enroll --timeout <s>`: against a broker where no cloud answers, the agent asks,
// waits, and gives up after the given seconds with ENROLL_TIMEOUT (the default is 300 s, beyond
// this test's own limit, so an ignored flag fails it).
describe('fleetml agent enroll --timeout', () => {
  let broker: EmbeddedBroker;
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetml-enroll-timeout-'));
    broker = await startEmbeddedBroker({ port: 0, logger: createLogger({ name: 'b', level: 'silent' }) });
  });
  afterAll(async () => {
    await broker?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('asks for enrollment, then gives up after --timeout seconds with ENROLL_TIMEOUT', async () => {
    // A listener in the cloud's place that hears the request and never answers.
    const listener = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.port}`, { reconnectPeriod: 0 });
    const requests: string[] = [];
    listener.on('message', (topic) => requests.push(topic));
    await listener.subscribeAsync('fleetml/v1/enroll/#');
    try {
      const dataDir = join(dir, 'agent');
      const r = await fleetml(
        [
          ...['agent', 'enroll', '--cloud', `mqtt://127.0.0.1:${broker.port}`],
          ...['--enroll-token', 'enr_nobodyanswers1234', '--fleet-key', 'a'.repeat(43)],
          ...['--data-dir', dataDir, '--timeout', '3', '--json'],
        ],
        { timeout: 150_000 },
      );
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(/^error ENROLL_TIMEOUT: /m);
      expect(r.stdout).toBe('');
      expect(requests.some((t) => t.endsWith('/req'))).toBe(true);
      await expect(access(join(dataDir, 'identity.json'))).rejects.toThrow();
    } finally {
      await listener.endAsync();
    }
  }, 180_000);

  it('gives up just the same on a broker that accepts the connection and never answers it', async () => {
    // Before: the close waited for acknowledgements that could not come (exit 13, no error),
    // then a re-ask timer armed after the deadline kept the process alive.
    const silent = createServer((socket) => socket.on('data', () => {}));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', () => resolve()));
    const { port } = silent.address() as AddressInfo;
    try {
      const r = await fleetml(
        [
          ...['agent', 'enroll', '--cloud', `mqtt://127.0.0.1:${port}`],
          ...['--enroll-token', 'enr_nobodyanswers1234', '--fleet-key', 'a'.repeat(43)],
          ...['--data-dir', join(dir, 'silent'), '--timeout', '3'],
        ],
        { timeout: 150_000 },
      );
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(/^error ENROLL_TIMEOUT: /m);
    } finally {
      silent.close();
    }
  }, 180_000);

  it('refuses a --timeout that is not a positive number with INPUT_INVALID', async () => {
    for (const bad of ['soon', '0', '-5']) {
      const r = await fleetml([
        ...['agent', 'enroll', '--cloud', 'mqtt://127.0.0.1:1', '--enroll-token', 'enr_x'],
        ...['--data-dir', join(dir, 'bad'), '--timeout', bad],
      ]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^error INPUT_INVALID: --timeout must be/m);
    }
  }, 120_000);
});
