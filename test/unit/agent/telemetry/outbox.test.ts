import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TelemetryOutbox } from '../../../../agent/telemetry/outbox.js';
import { decodeThrottled } from '../../../../agent/telemetry/thermal.js';

const record = (cpuLoad: number) => ({
  at: new Date().toISOString(),
  cpuLoad,
  memUsedBytes: 1,
  memTotalBytes: 2,
  tempC: null,
  modelId: null,
  latency: null,
});

describe('telemetry outbox', () => {
  it('numbers records, returns them in order, forgets acknowledged ones, survives reopening', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetml-ob-'));
    const path = join(dir, 'outbox.sqlite');
    const a = new TelemetryOutbox({ path });
    expect([a.append(record(1)), a.append(record(2)), a.append(record(3))]).toEqual([1, 2, 3]);
    a.ack(1, 2);
    a.close();
    const b = new TelemetryOutbox({ path });
    expect(b.peek(10).map((r) => [r.seq, r.cpuLoad])).toEqual([[3, 3]]);
    b.ack(3, 3);
    // Sequence numbers never repeat, even after the table emptied.
    expect(b.append(record(4))).toBe(4);
    b.append(record(5));
    b.append(record(6));
    // Acks are ranges: a lost middle batch stays until it is acknowledged itself.
    b.ack(5, 6);
    expect(b.peek(10).map((r) => r.seq)).toEqual([4]);
    expect(b.peek(10, 4)).toEqual([]);
    b.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('stays bounded by dropping the oldest records', () => {
    const o = new TelemetryOutbox({ path: ':memory:', maxRecords: 3 });
    for (let i = 0; i < 5; i++) o.append(record(i));
    expect(o.size).toBe(3);
    expect(o.dropped).toBe(2);
    expect(o.peek(10).map((r) => r.seq)).toEqual([3, 4, 5]);
    // The records written after a drop carry the running count, so the cloud sees the gap explained.
    expect(o.peek(10).map((r) => r.droppedTotal)).toEqual([undefined, 1, 2]);
    o.close();
  });

  it('keeps the drop count across restarts', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetml-ob-'));
    const path = join(dir, 'outbox.sqlite');
    const a = new TelemetryOutbox({ path, maxRecords: 2 });
    for (let i = 0; i < 4; i++) a.append(record(i));
    a.close();
    const b = new TelemetryOutbox({ path, maxRecords: 2 });
    expect(b.dropped).toBe(2);
    b.append(record(9));
    expect(b.dropped).toBe(3);
    expect(b.peek(10).at(-1)?.droppedTotal).toBe(3);
    b.close();
    await rm(dir, { recursive: true, force: true });
  });
});

describe('vcgencmd throttle bits', () => {
  it('decodes current and has-occurred bits', () => {
    expect(decodeThrottled(0x50005)).toEqual({
      raw: 0x50005,
      underVoltage: true,
      frequencyCapped: false,
      throttled: true,
      softTempLimit: false,
      occurred: true,
    });
    expect(decodeThrottled(0).occurred).toBe(false);
  });
});
