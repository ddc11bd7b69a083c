import { expect, it } from 'vitest';
import { EnrollmentLedger } from '../../../cloud/fleet/identity/enroll-requests.js';
import { hashSecret } from '../../../cloud/fleet/identity/secrets.js';
import { TokenRepository } from '../../../cloud/fleet/identity/tokens.js';
import { DeviceRepository } from '../../../cloud/fleet/inventory/devices.js';
import type { FleetStore } from '../../../cloud/fleet/store/kysely.js';
import { type EnrollRequest, enrollCredentials } from '../../../shared/protocol/index.js';
import { PI_HARDWARE } from '../../support/hardware.js';
import { describeEachBackend } from '../support/backends.js';

const hardware = PI_HARDWARE;

let serial = 0;
const newDevice = () => ({ id: `pi-${++serial}`, name: 'pi', profile: null, hardware });
const request = (token: string, requestId: string): EnrollRequest => ({
  v: 1,
  requestId,
  token,
  agentVersion: '0.1.0',
  hardware,
});

async function usesLeft(store: FleetStore, token: string): Promise<number> {
  const row = await store.db
    .selectFrom('enroll_tokens')
    .select('uses_left')
    .where('token_hash', '=', hashSecret(token))
    .executeTakeFirstOrThrow();
  return Number(row.uses_left);
}

describeEachBackend('enrollment is idempotent on the request id', (backend) => {
  it('answers a repeated request with the same device and secret, without another use', async () => {
    const store = await backend.open();
    const ledger = new EnrollmentLedger(store);
    const { token } = await new TokenRepository(store).createEnrollToken({ uses: 3 });
    const first = await ledger.enroll(request(token, 'req-a'), newDevice());
    const again = await ledger.enroll(request(token, 'req-a'), newDevice());
    expect(first.replayed).toBe(false);
    expect(again).toMatchObject({ replayed: true, secret: first.secret, device: { id: first.device.id } });
    expect(await usesLeft(store, token)).toBe(2);
    expect(await new DeviceRepository(store).list()).toHaveLength(1);
    // The secret works for the device (its hash is what the broker checks)...
    expect(await new DeviceRepository(store).secretHash(first.device.id)).toBe(hashSecret(first.secret));
    // ...and is stored nowhere in clear.
    const rows = await store.db.selectFrom('enroll_requests').selectAll().execute();
    expect(JSON.stringify(rows)).not.toContain(first.secret);
    expect(JSON.stringify(rows)).not.toContain(token);

    const other = await ledger.enroll(request(token, 'req-b'), newDevice());
    expect(other.device.id).not.toBe(first.device.id);
    expect(other.secret).not.toBe(first.secret);
    expect(await usesLeft(store, token)).toBe(1);
  });

  it('is a new enrollment with another token, and refuses a used-up token without a trace', async () => {
    const store = await backend.open();
    const ledger = new EnrollmentLedger(store);
    const tokens = new TokenRepository(store);
    const one = (await tokens.createEnrollToken({ uses: 1 })).token;
    const two = (await tokens.createEnrollToken({ uses: 1 })).token;
    const a = await ledger.enroll(request(one, 'req-same'), newDevice());
    const b = await ledger.enroll(request(two, 'req-same'), newDevice());
    expect(b.device.id).not.toBe(a.device.id);
    // The lost reply of the last use comes again: same answer, although the token is used up.
    expect((await ledger.enroll(request(one, 'req-same'), newDevice())).device.id).toBe(a.device.id);
    await expect(ledger.enroll(request(one, 'req-new'), newDevice())).rejects.toMatchObject({
      code: 'ENROLL_TOKEN',
    });
    await expect(ledger.enroll(request('enr_unknown_token', 'req-x'), newDevice())).rejects.toMatchObject({
      code: 'ENROLL_TOKEN',
    });
    expect(await new DeviceRepository(store).list()).toHaveLength(2);
    expect(await store.db.selectFrom('enroll_requests').selectAll().execute()).toHaveLength(2);
  });

  it('gives concurrent copies of one request one device and one use', async () => {
    const store = await backend.open();
    const { token } = await new TokenRepository(store).createEnrollToken({ uses: 5 });
    // Two ledgers on one store stand for two replicas that each got a copy.
    const ledgers = [new EnrollmentLedger(store), new EnrollmentLedger(store)];
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) => ledgers[i % 2].enroll(request(token, 'req-race'), newDevice())),
    );
    expect(new Set(results.map((r) => r.device.id)).size).toBe(1);
    expect(new Set(results.map((r) => r.secret)).size).toBe(1);
    expect(results.filter((r) => !r.replayed)).toHaveLength(1);
    expect(await usesLeft(store, token)).toBe(4);
    expect(await new DeviceRepository(store).list()).toHaveLength(1);
  });

  it('does not give a revoked device its identity back', async () => {
    const store = await backend.open();
    const ledger = new EnrollmentLedger(store);
    const { token } = await new TokenRepository(store).createEnrollToken({ uses: 2 });
    const first = await ledger.enroll(request(token, 'req-r'), newDevice());
    await new DeviceRepository(store).revoke(first.device.id);
    await expect(ledger.enroll(request(token, 'req-r'), newDevice())).rejects.toMatchObject({
      code: 'DEVICE_REVOKED',
    });
  });

  it('never replays a request id derived from the token (agents before request ids were random)', async () => {
    const store = await backend.open();
    const ledger = new EnrollmentLedger(store);
    const { token } = await new TokenRepository(store).createEnrollToken({ uses: 2 });
    // Such agents all sent the same id for one token: each request is its own device.
    const shared = enrollCredentials(token).clientId;
    const a = await ledger.enroll(request(token, shared), newDevice());
    const b = await ledger.enroll(request(token, shared), newDevice());
    expect(b.device.id).not.toBe(a.device.id);
    expect([a.replayed, b.replayed]).toEqual([false, false]);
    expect(await usesLeft(store, token)).toBe(0);
  });
});
