import { randomBytes } from 'node:crypto';
import { isFleetError } from '../../../shared/errors/index.js';
import type { Logger } from '../../../shared/logger.js';
import {
  type EnrollReply,
  type EnrollRequest,
  encodeJson,
  enrollReplyTopic,
} from '../../../shared/protocol/index.js';
import type { TargetPublisher } from '../delivery/targets.js';
import type { DeviceRepository } from '../inventory/devices.js';
import { hashSecret, newSecret } from './secrets.js';
import type { TokenRepository } from './tokens.js';

export interface EnrollmentDeps {
  devices: DeviceRepository;
  tokens: TokenRepository;
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
 * Exchanges a valid enrollment token for a per-device identity (id + secret, stored hashed).
 * `replyTo` is the request id of the topic the request arrived on (the requesting client's).
 */
export async function handleEnrollRequest(
  deps: EnrollmentDeps,
  request: EnrollRequest,
  replyTo: string = request.requestId,
): Promise<void> {
  let reply: EnrollReply;
  try {
    await deps.tokens.consumeEnrollToken(request.token);
    const secret = newSecret();
    const profile = deps.matchProfile?.(request) ?? null;
    const device = await deps.devices.create({
      id: newDeviceId(request.hardware.hostname),
      name: request.hardware.hostname,
      secretHash: hashSecret(secret),
      profile,
      hardware: request.hardware,
    });
    await deps.onEnrolled?.(device.id, secret);
    reply = { v: 1, ok: true, deviceId: device.id, secret, profile, fleetPublicKey: deps.fleetPublicKey };
    deps.logger.info({ deviceId: device.id, profile, arch: request.hardware.arch }, 'device enrolled');
  } catch (error) {
    const code = isFleetError(error) ? error.code : 'INTERNAL';
    deps.logger.warn({ code, requestId: replyTo }, 'enrollment refused');
    reply = { v: 1, ok: false, error: { code, message: (error as Error).message } };
  }
  await deps.publisher.publish(enrollReplyTopic(replyTo), encodeJson(reply), { qos: 1 });
}
