import { describe, expect, it } from 'vitest';
import { identityForEnrollClient, mayPublish, maySubscribe } from '../../../cloud/fleet/broker/acl.js';

const device = { kind: 'device', deviceId: 'pi-1' } as const;

describe('broker access rules', () => {
  it('lets a device publish only on its own channels', () => {
    expect(mayPublish(device, 'fleetml/v1/d/pi-1/telemetry', false)).toBe(true);
    expect(mayPublish(device, 'fleetml/v1/d/pi-1/status', true)).toBe(true);
    expect(mayPublish(device, 'fleetml/v1/d/pi-2/telemetry', false)).toBe(false);
    expect(mayPublish(device, 'fleetml/v1/d/pi-1/target', false)).toBe(false);
    expect(mayPublish(device, 'fleetml/v1/d/pi-1/transfer/blk', false)).toBe(false);
    expect(mayPublish(device, 'fleetml/v1/d/pi-1/telemetry', true)).toBe(false);
    expect(mayPublish(device, 'fleetml/v1/enroll/x/reply', false)).toBe(false);
  });

  it('lets a device subscribe only to its own target and block replies, never to wildcards', () => {
    expect(maySubscribe(device, 'fleetml/v1/d/pi-1/target')).toBe(true);
    expect(maySubscribe(device, 'fleetml/v1/d/pi-1/transfer/blk')).toBe(true);
    expect(maySubscribe(device, 'fleetml/v1/d/+/target')).toBe(false);
    expect(maySubscribe(device, 'fleetml/v1/d/pi-1/#')).toBe(false);
    expect(maySubscribe(device, '#')).toBe(false);
    expect(maySubscribe(device, 'fleetml/v1/d/pi-2/target')).toBe(false);
  });

  it('confines an enrolling client to its own request and reply', () => {
    const enroll = identityForEnrollClient('enroll-abc123');
    expect(enroll).toEqual({ kind: 'enroll', requestId: 'enroll-abc123' });
    expect(mayPublish(enroll!, 'fleetml/v1/enroll/enroll-abc123/req', false)).toBe(true);
    expect(mayPublish(enroll!, 'fleetml/v1/enroll/other/req', false)).toBe(false);
    expect(maySubscribe(enroll!, 'fleetml/v1/enroll/enroll-abc123/reply')).toBe(true);
    expect(maySubscribe(enroll!, 'fleetml/v1/enroll/+/reply')).toBe(false);
    expect(identityForEnrollClient('enroll-a/b')).toBeUndefined();
    expect(identityForEnrollClient('device-1')).toBeUndefined();
  });
});
