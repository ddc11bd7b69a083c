import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { EnrollmentLedger } from '../../../../../cloud/fleet/identity/enroll-requests.js';
import { handleEnrollRequest } from '../../../../../cloud/fleet/identity/enrollment.js';
import { TokenRepository } from '../../../../../cloud/fleet/identity/tokens.js';
import { DeviceRepository } from '../../../../../cloud/fleet/inventory/devices.js';
import { openDatabase } from '../../../../../cloud/fleet/store/db.js';
import { openFleetStore } from '../../../../../cloud/fleet/store/kysely.js';
import { FleetError, isRetryableCode } from '../../../../../shared/errors/index.js';
import {
  type EnrollReply,
  type EnrollRequest,
  enrollReplySchema,
  enrollReplyTopic,
} from '../../../../../shared/protocol/index.js';
import { PI_HARDWARE } from '../../../../support/hardware.js';

/** The enrollment path with a real (in-memory) store and a broker that fails as told. */
async function enrollmentRig(brokerFails: (attempt: number) => Error | null) {
  const fleet = await openFleetStore({ sqlite: openDatabase({ path: ':memory:' }) });
  const devices = new DeviceRepository(fleet);
  const replies: Array<{ topic: string; reply: EnrollReply }> = [];
  const given: string[] = [];
  let attempts = 0;
  const deps = {
    devices,
    enrollments: new EnrollmentLedger(fleet),
    publisher: {
      publish: async (topic: string, payload: Buffer) => {
        replies.push({ topic, reply: enrollReplySchema.parse(JSON.parse(payload.toString('utf8'))) });
      },
    },
    logger: pino({ level: 'silent' }),
    onEnrolled: async (deviceId: string) => {
      const failure = brokerFails(++attempts);
      if (failure) throw failure;
      given.push(deviceId);
    },
  };
  const { token } = await new TokenRepository(fleet).createEnrollToken({ uses: 1 });
  const request = (requestId: string): EnrollRequest => ({
    v: 1,
    requestId,
    token,
    agentVersion: 'test',
    hardware: PI_HARDWARE,
  });
  return { deps, devices, replies, given, request };
}

// The dynamic security client rejects with CONFLICT (an error answer) or INTERNAL (no answer
// in time); the agent took either as final and never enrolled, though the token was used.
describe('an enrollment the broker does not take at first', () => {
  it.each([
    [
      'no answer in time',
      new FleetError('INTERNAL', "no answer from Mosquitto's dynamic security to createClient"),
    ],
    ['an error answer', new FleetError('CONFLICT', 'createRole: Internal error')],
  ])('is refused as retryable (%s); asked again, the device gets its one identity', async (_, failure) => {
    const rig = await enrollmentRig((attempt) => (attempt === 1 ? failure : null));
    await handleEnrollRequest(rig.deps, rig.request('req-one'));
    const first = rig.replies[0];
    expect(first.topic).toBe(enrollReplyTopic('req-one'));
    expect(first.reply).toMatchObject({ ok: false, error: { code: 'BROKER_UNAVAILABLE' } });
    if (first.reply.ok) throw new Error('unreachable');
    expect(first.reply.error.message).toContain(failure.message);
    expect(isRetryableCode(first.reply.error.code)).toBe(true);

    await handleEnrollRequest(rig.deps, rig.request('req-one'));
    const second = rig.replies[1].reply;
    if (!second.ok) throw new Error(`refused again: ${second.error.code}`);
    const stored = await rig.devices.list();
    expect(stored.map((d) => d.id)).toEqual([second.deviceId]);
    expect(rig.given).toEqual([second.deviceId]);

    // The single-use token went to that device: another request is refused for good.
    await handleEnrollRequest(rig.deps, rig.request('req-two'));
    const third = rig.replies[2].reply;
    expect(third).toMatchObject({ ok: false, error: { code: 'ENROLL_TOKEN' } });
    if (!third.ok) expect(isRetryableCode(third.error.code)).toBe(false);
  });

  it('keeps asking as long as the broker refuses, and never makes a second device', async () => {
    const rig = await enrollmentRig((attempt) =>
      attempt <= 3 ? new Error('connection closed before the answer') : null,
    );
    for (let i = 0; i < 4; i++) await handleEnrollRequest(rig.deps, rig.request('req-one'));
    expect(rig.replies.map((r) => (r.reply.ok ? 'ok' : r.reply.error.code))).toEqual([
      'BROKER_UNAVAILABLE',
      'BROKER_UNAVAILABLE',
      'BROKER_UNAVAILABLE',
      'ok',
    ]);
    expect((await rig.devices.list()).length).toBe(1);
  });
});
