import { describe, expect, it } from 'vitest';
import { DeviceCache, TouchThrottle } from '../../../../../cloud/fleet/inventory/device-cache.js';
import type { Device } from '../../../../../cloud/fleet/inventory/devices.js';

const device = (id: string, revoked = false) => ({ id, revoked }) as Device;

/** A device table that counts its reads. */
function table(rows: Record<string, Device>) {
  const reads: string[] = [];
  return {
    reads,
    rows,
    find: async (id: string) => {
      reads.push(id);
      return rows[id];
    },
  };
}

describe('DeviceCache', () => {
  it('answers repeated lookups from memory until the TTL, then reads again', async () => {
    const t = table({ a: device('a') });
    let now = 0;
    const cache = new DeviceCache(t, 5_000, () => now);
    expect((await cache.find('a'))?.id).toBe('a');
    now = 4_999;
    await cache.find('a');
    expect(t.reads).toEqual(['a']);
    t.rows.a = device('a', true);
    now = 5_000;
    expect((await cache.find('a'))?.revoked).toBe(true);
    expect(t.reads).toEqual(['a', 'a']);
  });

  it('shares one query among concurrent lookups and never caches a miss', async () => {
    const t = table({});
    const cache = new DeviceCache(t, 5_000, () => 0);
    expect(await Promise.all([cache.find('b'), cache.find('b'), cache.find('b')])).toEqual([
      undefined,
      undefined,
      undefined,
    ]);
    expect(t.reads).toEqual(['b']);
    t.rows.b = device('b'); // enrolled a moment later: seen at once
    expect((await cache.find('b'))?.id).toBe('b');
    expect(cache.size).toBe(1);
  });

  it('forgets a device this process changed', async () => {
    const t = table({ c: device('c') });
    const cache = new DeviceCache(t, 60_000, () => 0);
    await cache.find('c');
    t.rows.c = device('c', true);
    expect((await cache.find('c'))?.revoked).toBe(false);
    cache.forget('c');
    expect((await cache.find('c'))?.revoked).toBe(true);
  });
});

describe('TouchThrottle', () => {
  it('passes each device on at most once per interval', () => {
    let now = 1_000;
    const throttle = new TouchThrottle(5_000, () => now);
    expect(throttle.due(['a', 'b'])).toEqual(['a', 'b']);
    now = 3_000;
    expect(throttle.due(['a', 'c'])).toEqual(['c']);
    now = 6_000;
    expect(throttle.due(['a', 'b', 'c'])).toEqual(['a', 'b']);
  });
});
