import { randomBytes } from 'node:crypto';
import { chmod, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { FleetError, isRetryableCode } from '../shared/errors/index.js';
import { sha256Hex } from '../shared/hash.js';
import type { Logger } from '../shared/logger.js';
import {
  decodeJson,
  type EnrollReply,
  encodeJson,
  enrollCredentials,
  enrollReplySchema,
  enrollReplyTopic,
  enrollRequestTopic,
  type HardwareFacts,
  PROTOCOL_VERSION,
} from '../shared/protocol/index.js';
import { checkOfferedKey, fleetKeyPins } from './fleet-key-pins.js';
import { readJsonFile, writeFileAtomic } from './store/files.js';
import { MqttTransport } from './transport/mqtt.js';

export const identitySchema = z.object({
  deviceId: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/),
  secret: z.string().min(16),
  profile: z.string().nullable(),
  /**
   * base64 raw ed25519 fleet key, checked at enrollment against the fingerprint in the token or
   * --fleet-key. null only in identities written by older agents: such an agent installs nothing
   * until a key is pinned with --fleet-key.
   */
  fleetPublicKey: z.string().nullable(),
  enrolledAt: z.string(),
});
export type DeviceIdentity = z.infer<typeof identitySchema>;

const IDENTITY_FILE = 'identity.json';

export async function loadIdentity(dataDir: string): Promise<DeviceIdentity | null> {
  const path = join(dataDir, IDENTITY_FILE);
  const value = await readJsonFile(path);
  if (value === undefined) return null;
  const parsed = identitySchema.safeParse(value);
  if (!parsed.success) {
    throw new FleetError('CONFIG_INVALID', `identity file ${path} is invalid; remove it to enroll again`, {
      path,
    });
  }
  return parsed.data;
}

/** The secret lives here: owner-only permissions, written atomically. */
export async function saveIdentity(dataDir: string, identity: DeviceIdentity): Promise<void> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const path = join(dataDir, IDENTITY_FILE);
  await writeFileAtomic(path, JSON.stringify(identity, null, 2), 0o600);
  await chmod(path, 0o600);
}

export interface EnrollOptions {
  url: string;
  /** Fleet CA (PEM) to pin for mqtts. */
  caPem?: string;
  token: string;
  /** The fleet key (base64) or its fingerprint, given out of band (--fleet-key); '' = none. */
  fleetKey?: string;
  hardware: HardwareFacts;
  agentVersion: string;
  logger: Logger;
  /** Seconds to wait for a reply before publishing the request again. */
  timeoutS: number;
  /** Stops waiting (agent shutdown). */
  signal?: AbortSignal;
  /**
   * This enrollment's request id, carried by every resend: the cloud answers a repeat with the
   * same identity instead of using the token again. Default: a new random one.
   */
  requestId?: string;
}

/**
 * Publishes an enroll request on its own request topic and waits for the cloud's reply,
 * asking again every `timeoutS` (the cloud may start after the agent, or refuse with a
 * retryable code such as STORE_UNAVAILABLE). Any other refusal is final.
 */
export async function enroll(options: EnrollOptions): Promise<DeviceIdentity> {
  if (!options.token) {
    throw new FleetError(
      'CONFIG_INVALID',
      'this device is not enrolled: an enroll token is required (--enroll-token)',
    );
  }
  const pins = fleetKeyPins(options.token, options.fleetKey);
  // The client id doubles as the request id: brokers confine an enrolling client to
  // fleetml/v1/enroll/<its client id>/..., and the id is derived from the token, so a broker
  // can bind it to the token (Mosquitto's dynamic security has one client per token).
  const credentials = enrollCredentials(options.token);
  const requestId = options.requestId ?? newEnrollRequestId();
  const transport = new MqttTransport({
    url: options.url,
    caPem: options.caPem,
    clientId: credentials.clientId,
    username: credentials.username,
    password: credentials.password,
    logger: options.logger,
  });
  try {
    const reply = await awaitEnrollReply(transport, credentials.clientId, requestId, options);
    if (!reply.ok) {
      throw new FleetError('ENROLL_TOKEN', `enrollment refused: ${reply.error.code}: ${reply.error.message}`);
    }
    return {
      deviceId: reply.deviceId,
      secret: reply.secret,
      profile: reply.profile,
      fleetPublicKey: checkOfferedKey(reply.fleetPublicKey, pins),
      enrolledAt: new Date().toISOString(),
    };
  } finally {
    await transport.close();
  }
}

/** A fresh enrollment request id (the cloud keys idempotent enrollment on it, with the token). */
export function newEnrollRequestId(): string {
  return `req-${randomBytes(16).toString('hex')}`;
}

const PENDING_FILE = 'enroll-request.json';
const pendingSchema = z.object({
  requestId: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/),
  tokenHash: z.string(),
});

/**
 * The request id of the enrollment under way with this token, kept in the data directory: an
 * agent restarted before the reply arrived asks again as the same request (same device, no
 * second use of the token). Another token starts a new request.
 */
export async function pendingEnrollRequestId(dataDir: string, token: string): Promise<string> {
  const path = join(dataDir, PENDING_FILE);
  const tokenHash = sha256Hex(Buffer.from(token, 'utf8'));
  const saved = pendingSchema.safeParse(await readJsonFile(path).catch(() => undefined));
  if (saved.success && saved.data.tokenHash === tokenHash) return saved.data.requestId;
  const requestId = newEnrollRequestId();
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  await writeFileAtomic(path, JSON.stringify({ requestId, tokenHash }), 0o600);
  return requestId;
}

/** Forgets the pending request once its identity is saved. */
export async function clearPendingEnrollRequest(dataDir: string): Promise<void> {
  await rm(join(dataDir, PENDING_FILE), { force: true });
}

/**
 * Subscribes to the reply topic (named by the token-derived client id), then publishes the
 * request every `timeoutS` until the reply to this request (`requestId`) comes.
 */
function awaitEnrollReply(
  transport: MqttTransport,
  topicId: string,
  requestId: string,
  options: EnrollOptions,
): Promise<EnrollReply> {
  return new Promise<EnrollReply>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    // Once answered or given up, nothing asks again: the subscription below may only settle
    // after the deadline (a broker that never acknowledged it), and a re-ask timer armed then
    // kept `agent enroll --timeout` alive after it had reported ENROLL_TIMEOUT.
    let settled = false;
    const onAbort = () => {
      settled = true;
      clearTimeout(timer);
      reject(new FleetError('ENROLL_TIMEOUT', 'no enrollment reply from the cloud before the deadline'));
    };
    if (options.signal?.aborted) return onAbort();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const ask = () => {
      if (settled) return;
      if (transport.connected) {
        const request = {
          v: PROTOCOL_VERSION,
          requestId,
          token: options.token,
          agentVersion: options.agentVersion,
          hardware: options.hardware,
        };
        transport.publish(enrollRequestTopic(topicId), encodeJson(request)).catch(() => {});
        options.logger.info({ requestId }, 'enroll request sent');
      }
      timer = setTimeout(ask, options.timeoutS * 1000);
    };
    transport
      .subscribe(enrollReplyTopic(topicId), (payload) => {
        try {
          const message = decodeJson(enrollReplySchema, payload);
          // Another device enrolling with the same token shares the topic: not our answer.
          if (message.requestId !== undefined && message.requestId !== requestId) return;
          // The cloud could not answer for now (its database away or busy): the timer asks
          // again as the same request, which the cloud handles idempotently.
          if (!message.ok && isRetryableCode(message.error.code)) {
            options.logger.warn(
              { requestId, code: message.error.code },
              'enrollment refused for now: asking again',
            );
            return;
          }
          settled = true;
          clearTimeout(timer);
          options.signal?.removeEventListener('abort', onAbort);
          resolve(message);
        } catch (error) {
          options.logger.warn({ err: error, code: (error as FleetError).code }, 'rejected enroll reply');
        }
      })
      .then(ask, reject);
  });
}
