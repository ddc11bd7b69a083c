import { afterEach, describe, expect, it, vi } from 'vitest';
import { finishRun, interruption, teardown } from '../../../scripts/bench/_teardown.js';

// scripts/bench/wave-rollout.ts used to swallow every teardown error (`.catch(() => {})`), so a
// database that could not be dropped went unnoticed; and a failing teardown step could replace
// the run's own error.
describe('benchmark teardown', () => {
  afterEach(() => {
    process.exitCode = undefined;
    vi.restoreAllMocks();
  });

  it('runs every step after a failing one and names each failure', async () => {
    const ran: string[] = [];
    const failures = await teardown([
      ['stop cloud', async () => ran.push('cloud')],
      [
        'drop database fleetml_bench_x',
        async () => {
          ran.push('drop');
          throw new Error('database is being accessed by other users');
        },
      ],
      ['remove temp dir', async () => ran.push('rm')],
    ]);
    expect(ran).toEqual(['cloud', 'drop', 'rm']);
    expect(failures).toEqual(['drop database fleetml_bench_x: database is being accessed by other users']);
  });

  it('keeps the run error, prints teardown failures, and fails a clean run that left something behind', async () => {
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    const broken: [string, () => Promise<unknown>] = [
      'drop database',
      async () => {
        throw new Error('connection refused');
      },
    ];
    const runError = new Error('devices did not connect within an hour');
    await expect(finishRun(runError, [broken])).rejects.toBe(runError);
    expect(stderr).toHaveBeenCalledWith('teardown failed: drop database: connection refused\n');
    expect(process.exitCode).toBeUndefined();

    await finishRun(undefined, [broken]);
    expect(process.exitCode).toBe(1);
    process.exitCode = undefined;
    await finishRun(undefined, [['fine', async () => {}]]);
    expect(process.exitCode).toBeUndefined();
  });

  it('turns SIGINT or SIGTERM into an error, so that the teardown still runs, and lets go of both', async () => {
    const before = process.listenerCount('SIGINT');
    const interrupted = interruption();
    expect(process.listenerCount('SIGINT')).toBe(before + 1);
    // Call the handler itself: emitting the signal would reach the test runner's handlers too.
    (process.listeners('SIGTERM').at(-1) as () => void)();
    await expect(interrupted).rejects.toThrow('interrupted by SIGTERM');
    expect(process.listenerCount('SIGINT')).toBe(before);
  });
});
