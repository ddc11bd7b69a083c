import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { type Progress, progressForwarder } from '../../../../../cloud/fleet/jobs/progress-forwarder.js';

describe('progressForwarder', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('sends the first value at once and the last of a burst when the interval ends', async () => {
    const sent: Progress[] = [];
    const forward = progressForwarder(async (p) => sent.push(p), 250);
    forward.push({ progress: 0, stage: 'original' });
    forward.push({ progress: 0.11, stage: 'int8' });
    forward.push({ progress: 0.33, stage: 'student' });
    await vi.advanceTimersByTimeAsync(0);
    expect(sent).toEqual([{ progress: 0, stage: 'original' }]);
    await vi.advanceTimersByTimeAsync(250);
    // The stage a long run is in is shown, not the one before it.
    expect(sent).toEqual([
      { progress: 0, stage: 'original' },
      { progress: 0.33, stage: 'student' },
    ]);
    await vi.advanceTimersByTimeAsync(1000);
    expect(sent).toHaveLength(2);
  });

  it('keeps order when an update is slow, and close waits for it and drops what waits', async () => {
    const sent: number[] = [];
    let release!: () => void;
    const slow = new Promise<void>((r) => {
      release = r;
    });
    const forward = progressForwarder(async (p) => {
      if (p.progress === 0.1) await slow;
      sent.push(p.progress);
    }, 100);
    forward.push({ progress: 0.1, stage: 'a' });
    await vi.advanceTimersByTimeAsync(150);
    forward.push({ progress: 0.2, stage: 'b' });
    await vi.advanceTimersByTimeAsync(0);
    expect(sent).toEqual([]);
    forward.push({ progress: 0.3, stage: 'c' });
    const closed = forward.close();
    release();
    await closed;
    expect(sent).toEqual([0.1, 0.2]);
    await vi.advanceTimersByTimeAsync(1000);
    forward.push({ progress: 0.9, stage: 'late' });
    await vi.advanceTimersByTimeAsync(1000);
    expect(sent).toEqual([0.1, 0.2]);
  });

  it('survives a failed update', async () => {
    const sent: number[] = [];
    const forward = progressForwarder(async (p) => {
      if (p.progress === 0.1) throw new Error('database away');
      sent.push(p.progress);
    }, 10);
    forward.push({ progress: 0.1, stage: 'a' });
    await vi.advanceTimersByTimeAsync(20);
    forward.push({ progress: 0.2, stage: 'b' });
    await forward.close();
    expect(sent).toEqual([0.2]);
  });
});
