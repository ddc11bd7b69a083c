import { describe, expect, it } from 'vitest';
import {
  DeviceReportQueue,
  KeyedSerial,
  untilStoreAnswers,
} from '../../../../../cloud/fleet/ingest/store-retry.js';

/** What node reports when the database refuses connections (store/unavailable.ts reads it). */
const unreachable = () =>
  Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });

/** A clock the test moves: each attempt below "takes" some time on it, so deadlines are exact. */
function testClock() {
  let t = 0;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe('retrying device reports while the store is unreachable', () => {
  it('tries again until the store answers, and not at all for other errors', async () => {
    const clock = testClock();
    let attempts = 0;
    const answered = await untilStoreAnswers(
      async () => {
        if (++attempts < 3) throw unreachable();
        return 'stored';
      },
      60_000,
      { firstDelayMs: 1, now: clock.now },
    );
    expect({ answered, attempts }).toEqual({ answered: 'stored', attempts: 3 });

    let wrongAttempts = 0;
    const wrong = untilStoreAnswers(
      async () => {
        wrongAttempts++;
        throw Object.assign(new Error('syntax error'), { code: '42601' });
      },
      60_000,
      { firstDelayMs: 1, now: clock.now },
    );
    await expect(wrong).rejects.toThrow('syntax error');
    expect(wrongAttempts).toBe(1);
  });

  it('applies one device’s reports in arrival order and does not hold back other devices', async () => {
    const serial = new KeyedSerial();
    const applied: string[] = [];
    let releaseFirst = () => {};
    const first = serial.run('d1', async () => {
      await new Promise<void>((resolve) => {
        releaseFirst = () => resolve();
      });
      applied.push('d1#1');
    });
    const second = serial.run('d1', async () => applied.push('d1#2'));
    await serial.run('d2', async () => applied.push('d2#1'));
    expect(applied).toEqual(['d2#1']); // d1#2 waits behind d1#1; d2 did not
    releaseFirst();
    await Promise.all([first, second]);
    expect(applied).toEqual(['d2#1', 'd1#1', 'd1#2']);
    expect(serial.size).toBe(0);
  });

  it('gives each report at most its wait from arrival, also when queued behind a waiting one', async () => {
    // The store stays away; each attempt takes 400 ms on the test clock; the wait is 1 s.
    const clock = testClock();
    const queue = new DeviceReportQueue({ maxWaitMs: 1_000, firstDelayMs: 1, now: clock.now });
    const attempts = { first: 0, second: 0 };
    const failing = (which: keyof typeof attempts) => async () => {
      attempts[which]++;
      clock.advance(400);
      throw unreachable();
    };
    // Both arrive at t = 0: the first tries at 0, 400 and 800 and gives up at 1200.
    const first = queue.run('d1', failing('first'));
    const second = queue.run('d1', failing('second'));
    await expect(first).rejects.toThrow('ECONNREFUSED');
    // The second's wait ended at 1000, while it was queued: one attempt, then it is given up. It
    // used to start a full wait of its own at 1200 (three attempts, given up at 2400).
    await expect(second).rejects.toThrow('ECONNREFUSED');
    expect(attempts).toEqual({ first: 3, second: 1 });
  });
});
