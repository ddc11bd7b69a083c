import { createHmac, randomBytes } from 'node:crypto';
import { FleetError } from '../../../shared/errors/index.js';
import { type EnrollRequest, enrollCredentials, type HardwareFacts } from '../../../shared/protocol/index.js';
import { type Device, DeviceRepository } from '../inventory/devices.js';
import { type FleetStore, inTransaction } from '../store/kysely.js';
import { hashSecret } from './secrets.js';
import { TokenRepository } from './tokens.js';

export interface NewDevice {
  id: string;
  name: string;
  profile: string | null;
  hardware: HardwareFacts;
}

export interface Enrollment {
  device: Device;
  secret: string;
  /** True when this answers a request seen before (no use of the token, no new device). */
  replayed: boolean;
}

type Attempt = { kind: 'created'; device: Device } | { kind: 'seen-before' } | { kind: 'refused' };

/**
 * Enrollment, idempotent on the request id. An agent whose reply was lost asks again with the
 * same request id; that must not use the token a second time nor leave an orphan device. The
 * first request's device is recorded under (token, request id) in the same transaction that
 * uses the token and creates the device, and a repeat gets that device and the same secret.
 *
 * The secret is stored nowhere: it is HMAC(token, salt), and only the salt is kept, so the
 * database alone cannot give it out (the token is kept hashed) and a requester that holds the
 * token and the request id gets exactly what it got the first time.
 *
 * Agents before this change sent the id derived from the token (enrollCredentials) as their
 * request id, the same for every device of a token: such a request names the token, not one
 * request, and is never replayed (each is a new enrollment, as before).
 */
export class EnrollmentLedger {
  constructor(private readonly store: FleetStore) {}

  async enroll(request: EnrollRequest, device: NewDevice): Promise<Enrollment> {
    const replayable = request.requestId !== enrollCredentials(request.token).clientId;
    if (replayable) {
      const earlier = await this.replay(request);
      if (earlier) return earlier;
    }
    const salt = randomBytes(16).toString('base64url');
    const secret = deviceSecret(request.token, salt);
    const attempt = await inTransaction(this.store, (tx) =>
      attemptEnrollment(tx, request, { ...device, secretHash: hashSecret(secret) }, replayable ? salt : null),
    );
    if (attempt.kind === 'created') return { device: attempt.device, secret, replayed: false };
    if (attempt.kind === 'refused')
      throw new FleetError('ENROLL_TOKEN', 'enrollment token is unknown, used up, revoked or expired');
    // Another copy of this request (another replica, or a quick resend) committed first.
    const earlier = await this.replay(request);
    if (!earlier)
      throw new FleetError('CONFLICT', 'the same enrollment request is being handled elsewhere; ask again');
    return earlier;
  }

  /** What the first request with this token and request id got, or undefined for a new request. */
  private async replay(request: EnrollRequest): Promise<Enrollment | undefined> {
    const row = await this.store.db
      .selectFrom('enroll_requests')
      .select(['device_id', 'salt'])
      .where('token_hash', '=', hashSecret(request.token))
      .where('request_id', '=', request.requestId)
      .executeTakeFirst();
    if (!row) return undefined;
    const device = await new DeviceRepository(this.store).get(row.device_id);
    if (device.revoked)
      throw new FleetError('DEVICE_REVOKED', `the device this request enrolled (${device.id}) is revoked`, {
        deviceId: device.id,
      });
    return { device, secret: deviceSecret(request.token, row.salt), replayed: true };
  }
}

/**
 * Claims the request id, uses the token, creates the device. Every expected outcome commits
 * (nothing is rolled back on SQLite, where a rollback could take raw writes that interleaved
 * on the shared handle with it); a concurrent copy of the request waits on the claimed key
 * (PostgreSQL) or runs after it (SQLite) and finds it taken.
 */
async function attemptEnrollment(
  tx: FleetStore,
  request: EnrollRequest,
  device: NewDevice & { secretHash: string },
  salt: string | null,
): Promise<Attempt> {
  const tokenHash = hashSecret(request.token);
  if (salt !== null) {
    const claimed = await tx.db
      .insertInto('enroll_requests')
      .values({
        token_hash: tokenHash,
        request_id: request.requestId,
        device_id: device.id,
        salt,
        created_at: new Date().toISOString(),
      })
      .onConflict((oc) => oc.columns(['token_hash', 'request_id']).doNothing())
      .executeTakeFirst();
    if (Number(claimed.numInsertedOrUpdatedRows ?? 0) === 0) return { kind: 'seen-before' };
  }
  if (!(await new TokenRepository(tx).tryConsumeEnrollToken(request.token))) {
    if (salt !== null)
      await tx.db
        .deleteFrom('enroll_requests')
        .where('token_hash', '=', tokenHash)
        .where('request_id', '=', request.requestId)
        .execute();
    return { kind: 'refused' };
  }
  return { kind: 'created', device: await new DeviceRepository(tx).create(device) };
}

/** The device secret of an enrollment: 256 bits only the token holder and the cloud can derive. */
function deviceSecret(token: string, salt: string): string {
  return createHmac('sha256', token).update(`fleetml device secret\n${salt}`).digest('base64url');
}
