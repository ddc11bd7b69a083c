import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulation } from '../../../cloud/simulator/fleet.js';
import { FleetmlProcess } from '../../faults/procs.js';

// `fleetml cloud start --enrollments-per-minute N`: the embedded broker accepts N enrollment
// connections per client address and minute (default 30); the next one is refused.
describe('cloud start --enrollments-per-minute', () => {
  let dir: string;
  let cloud: FleetmlProcess;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetml-enroll-rate-'));
    cloud = new FleetmlProcess(
      [
        ...['cloud', 'start', '--data-dir', join(dir, 'cloud'), '--http-port', '0', '--mqtt-port', '0'],
        ...['--insecure-plain-mqtt', '--enrollments-per-minute', '2'],
      ],
      { XDG_STATE_HOME: join(dir, 'state') },
    );
    await cloud.line(/^token: /, 60_000);
  });
  afterAll(async () => {
    await cloud?.kill('SIGTERM');
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses the enrollment past the limit from one address', async () => {
    const value = (prefix: string) => cloud.lines.find((l) => l.startsWith(prefix))!.slice(prefix.length);
    const response = await fetch(new URL('/api/enroll-tokens', value('console: ')), {
      method: 'POST',
      headers: { authorization: `Bearer ${value('token: ')}`, 'content-type': 'application/json' },
      body: JSON.stringify({ uses: 3 }),
    });
    const { token } = (await response.json()) as { token: string };
    const result = await startSimulation({
      cloud: value('broker: '),
      enrollToken: token,
      devices: 3,
      durationS: 12,
      rampS: 2,
      drainS: 1,
      namePrefix: 'rate',
    }).done;
    // Two enrollments in the minute; the third device's connection is refused until the end.
    expect(result.enrolled).toBe(2);
    expect(result.enrollFailed).toBe(1);
    expect(cloud.logs.some((l) => l.code === 'RATE_LIMITED')).toBe(true);
  }, 120_000);
});
