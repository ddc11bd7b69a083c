import { describe, expect, it } from 'vitest';
import { chooseBrokerTransport, isLoopbackHost } from '../../../../../cloud/fleet/broker/listen-policy.js';
import { MqttFrameGuard } from '../../../../../cloud/fleet/broker/packet-guard.js';
import { WindowCounter } from '../../../../../cloud/fleet/broker/rate-limit.js';

/** Feeds `chunks` through a guard; returns the bytes passed and the error, if any. */
async function feed(chunks: Buffer[], limits = { firstPacketBytes: 100, packetBytes: 1000 }) {
  const violations: number[] = [];
  const guard = new MqttFrameGuard(limits, (bytes) => violations.push(bytes));
  const passed: Buffer[] = [];
  guard.on('data', (d: Buffer) => passed.push(d));
  const error = await new Promise<Error | undefined>((resolve) => {
    guard.once('error', resolve);
    guard.once('end', () => resolve(undefined));
    for (const c of chunks) guard.write(c);
    guard.end();
  });
  return { passed: Buffer.concat(passed), error, violations };
}

describe('broker transport policy', () => {
  it('serves TLS unless plain MQTT is asked for, and warns when plain goes beyond loopback', () => {
    expect(chooseBrokerTransport('0.0.0.0', false)).toEqual({ tls: true });
    expect(chooseBrokerTransport('127.0.0.1', false)).toEqual({ tls: true });
    expect(chooseBrokerTransport('127.0.0.1', true)).toEqual({ tls: false });
    const exposed = chooseBrokerTransport('0.0.0.0', true);
    expect(exposed.tls).toBe(false);
    expect(exposed.warning).toMatch(/INSECURE.*clear text/);
    for (const host of ['localhost', '127.0.0.5', '::1', '[::1]'])
      expect(isLoopbackHost(host), host).toBe(true);
    for (const host of ['0.0.0.0', '10.0.0.1', '::', 'broker.example.com'])
      expect(isLoopbackHost(host), host).toBe(false);
  });
});

describe('MQTT frame guard', () => {
  it('passes packets within the limits, even with headers split across chunks', async () => {
    const connect = Buffer.concat([Buffer.from([0x10, 50]), Buffer.alloc(50)]);
    const publish = Buffer.concat([Buffer.from([0x30, 0xe8, 0x07]), Buffer.alloc(1000)]); // 1000 bytes
    const all = Buffer.concat([connect, publish, Buffer.from([0xc0, 0])]);
    const chunks = [all.subarray(0, 1), all.subarray(1, 53), all.subarray(53, 54), all.subarray(54)];
    const { passed, error } = await feed(chunks);
    expect(error).toBeUndefined();
    expect(passed.equals(all)).toBe(true);
  });

  it('stops a first packet over the CONNECT limit from its header, before its body', async () => {
    // 250 MB declared: 0x80 0xe5 0x9a 0x77 is 250,000,000 in MQTT's variable-length encoding.
    const { passed, error, violations } = await feed([Buffer.from([0x10, 0x80, 0xe5, 0x9a, 0x77, 1, 2, 3])]);
    expect(error?.message).toMatch(/over the limit of 100/);
    expect(violations).toEqual([250_000_000]);
    expect(passed.length).toBe(0);
  });

  it('applies the larger limit after the first packet, and refuses a malformed length', async () => {
    const connect = Buffer.concat([Buffer.from([0x10, 10]), Buffer.alloc(10)]);
    const big = Buffer.from([0x30, 0xe9, 0x07]); // 1001 bytes declared
    expect((await feed([connect, big])).violations).toEqual([1001]);
    expect((await feed([Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x01])])).error?.message).toMatch(
      /malformed/,
    );
  });
});

describe('window counter', () => {
  it('allows max events per key and window, then refuses until they age out', () => {
    const counter = new WindowCounter(3, 1000);
    expect([1, 2, 3, 4].map((i) => counter.hit('a', i))).toEqual([true, true, true, false]);
    expect(counter.hit('b', 5)).toBe(true);
    expect(counter.over('a', 500)).toBe(true);
    expect(counter.over('a', 2000)).toBe(false);
    expect(counter.hit('a', 2000)).toBe(true);
  });
});
