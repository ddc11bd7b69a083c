import { randomBytes } from 'node:crypto';
import { FleetError, isFleetError } from '../../../shared/errors/index.js';
import type { Logger } from '../../../shared/logger.js';
import {
  type EnrollReply,
  type EnrollRequest,
  encodeJson,
  enrollReplyTopic,
} from '../../../shared/protocol/index.js';
import type { TargetPublisher } from '../delivery/targets.js';
import type { DeviceRepository } from '../inventory/devices.js';
import { codedStoreError } from '../store/unavailable.js';
import type { EnrollmentLedger } from './enroll-requests.js';

export interface EnrollmentDeps {
  devices: DeviceRepository;
  /** Enrollment as one transaction, idempotent on the request id (enroll-requests.ts). */
  enrollments: EnrollmentLedger;
  publisher: TargetPublisher;
  logger: Logger;
  /** Picks a device profile from the reported hardware; null when none matches. */
  matchProfile?: (request: EnrollRequest) => string | null;
  fleetPublicKey?: string;
  /** Runs after the device is stored and before the reply (e.g. to give it broker credentials). */
  onEnrolled?: (deviceId: string, secret: string) => Promise<void>;
}

/** Device ids: a readable prefix from the hostname plus randomness, safe as a topic level. */
function newDeviceId(hostname: string): string {
  const prefix =
    hostname
      .toLowerCase()
      .replace(/[^a-z0-9-]/g, '-')
      .slice(0, 24) || 'device';
  return `${prefix}-${randomBytes(3).toString('hex')}`;
}

/**
 * Gives the stored device its broker credentials. Whatever the broker answered (Mosquitto's
 * dynamic security busy past its deadline, an error it may not give again) the device is stored
 * and its token used: the refusal is retryable, and the device's next ask, the same request,
 * gets the same identity and gives it to the broker again. A code the agent takes as final
 * (the dynsec client's CONFLICT or INTERNAL) would leave the device unenrolled for good.
 */
async function giveToBroker(deps: EnrollmentDeps, deviceId: string, secret: string): Promise<void> {
  try {
    await deps.onEnrolled?.(deviceId, secret);
  } catch (thrown) {
    // The password-file broker stores the hash first: a database outage there keeps its own code.
    const coded = codedStoreError(thrown);
    if (isFleetError(coded) && coded.retryable) throw coded;
    throw new FleetError(
      'BROKER_UNAVAILABLE',
      `the broker did not take the credentials of device ${deviceId}: ${(thrown as Error).message}`,
      undefined,
      { cause: thrown },
    );
  }
}

/**
 * Exchanges a valid enrollment token for a per-device identity (id + secret, stored hashed).
 * The same request again (same request id and token: its reply was lost) gets the same
 * identity back without using the token again. `replyTo` is the request id of the topic the
 * request arrived on (the requesting client's); the reply names the request it answers, so
 * agents sharing a token's reply topic each take their own.
 */
export async function handleEnrollRequest(
  deps: EnrollmentDeps,
  request: EnrollRequest,
  replyTo: string = request.requestId,
): Promise<void> {
  let reply: EnrollReply;
  try {
    const profile = deps.matchProfile?.(request) ?? null;
    const { device, secret, replayed } = await deps.enrollments.enroll(request, {
      id: newDeviceId(request.hardware.hostname),
      name: request.hardware.hostname,
      profile,
      hardware: request.hardware,
    });
    // Again on a replay: the first attempt may have stopped before the broker knew the device.
    await giveToBroker(deps, device.id, secret);
    reply = {
      v: 1,
      ok: true,
      requestId: request.requestId,
      deviceId: device.id,
      secret,
      profile: device.profile,
      fleetPublicKey: deps.fleetPublicKey,
    };
    deps.logger.info(
      { deviceId: device.id, profile: device.profile, arch: request.hardware.arch, replayed },
      replayed ? 'enrollment request repeated: same device' : 'device enrolled',
    );
  } catch (thrown) {
    // A database that is away or has no free connection (many devices enrolling at once) is a
    // retryable STORE_UNAVAILABLE: the device asks again as the same request.
    const error = codedStoreError(thrown);
    const code = isFleetError(error) ? error.code : 'INTERNAL';
    if (code === 'INTERNAL') deps.logger.error({ err: error, requestId: replyTo }, 'enrollment failed');
    else deps.logger.warn({ code, requestId: replyTo, err: (error as Error).message }, 'enrollment refused');
    reply = {
      v: 1,
      ok: false,
      requestId: request.requestId,
      error: { code, message: (error as Error).message },
    };
  }
  await deps.publisher.publish(enrollReplyTopic(replyTo), encodeJson(reply), { qos: 1 });
}
