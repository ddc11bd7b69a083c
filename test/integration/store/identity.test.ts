import { expect, it } from 'vitest';
import { hashSecret } from '../../../cloud/fleet/identity/secrets.js';
import { TokenRepository } from '../../../cloud/fleet/identity/tokens.js';
import { DeviceRepository } from '../../../cloud/fleet/inventory/devices.js';
import { PI_HARDWARE } from '../../support/hardware.js';
import { describeEachBackend } from '../support/backends.js';

const hardware = PI_HARDWARE;

describeEachBackend('device registry', (backend) => {
  it('stores, lists and updates devices', async () => {
    const devices = new DeviceRepository(await backend.open());
    await devices.create({ id: 'b', name: 'bee', secretHash: hashSecret('s'), profile: 'rpi5', hardware });
    const a = await devices.create({
      id: 'a',
      name: 'ay',
      secretHash: hashSecret('t'),
      profile: null,
      hardware,
    });
    expect(a).toMatchObject({ id: 'a', online: false, revoked: false, tags: [], hardware, lastSeenAt: null });
    expect((await devices.list()).map((d) => d.id)).toEqual(['a', 'b']);

    await devices.setOnline('a', true, '2026-01-01T00:00:00.000Z');
    await devices.setTags('a', ['lab', 'north']);
    await devices.setProfile('a', 'rpi4');
    await devices.applyState('a', {
      v: 1,
      targetVersion: 7,
      phase: 'active',
      activeModel: { modelId: 'm-1', sha256: 'c'.repeat(64), version: 7 },
      progress: null,
      error: { code: 'TRANSFER_NO_SPACE', message: 'disk full' },
      at: new Date().toISOString(),
    });
    expect(await devices.get('a')).toMatchObject({
      online: true,
      tags: ['lab', 'north'],
      profile: 'rpi4',
      phase: 'active',
      activeModelId: 'm-1',
      appliedVersion: 7,
      lastError: { code: 'TRANSFER_NO_SPACE', message: 'disk full' },
    });
    await devices.touchMany(['a', 'b'], '2026-02-01T00:00:00.000Z');
    expect((await devices.list()).map((d) => d.lastSeenAt)).toEqual([
      '2026-02-01T00:00:00.000Z',
      '2026-02-01T00:00:00.000Z',
    ]);
    expect(await devices.find('ghost')).toBeUndefined();
    await expect(devices.get('ghost')).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('reads many devices at once, past one query’s id list', async () => {
    const devices = new DeviceRepository(await backend.open());
    const ids = Array.from({ length: 503 }, (_, i) => `dev-${i}`);
    for (const id of ids) {
      await devices.create({ id, name: id, secretHash: hashSecret(id), profile: null, hardware });
    }
    await devices.setOnline('dev-502', true, '2026-01-01T00:00:00.000Z');
    const found = await devices.findMany([...ids, 'ghost']);
    expect(found.size).toBe(503);
    expect(found.has('ghost')).toBe(false);
    expect(found.get('dev-502')).toMatchObject({ id: 'dev-502', online: true, hardware });
    expect(found.get('dev-3')).toMatchObject({ online: false });
    expect((await devices.findMany([])).size).toBe(0);
  });

  it("keeps a device's later state when an earlier report arrives after it, unless its clock stepped back far", async () => {
    const devices = new DeviceRepository(await backend.open());
    await devices.create({ id: 'a', name: 'ay', secretHash: hashSecret('a'), profile: null, hardware });
    const report = (phase: 'installing' | 'active', at: string) => ({
      v: 1 as const,
      targetVersion: 3,
      phase,
      activeModel: phase === 'active' ? { modelId: 'm-1', sha256: 'c'.repeat(64), version: 3 } : null,
      progress: null,
      error: null,
      at,
    });
    // Shared subscriptions hand one device's reports to different replicas: 'active' (sent
    // later) is stored first, 'installing' (sent earlier, retried) arrives after it.
    await devices.applyState('a', report('active', '2026-03-01T10:00:02.000Z'));
    await devices.applyState('a', report('installing', '2026-03-01T10:00:01.000Z'));
    expect(await devices.get('a')).toMatchObject({ phase: 'active', activeModelId: 'm-1' });
    // Same device time (a report sent again) is applied.
    await devices.applyState('a', report('installing', '2026-03-01T10:00:02.000Z'));
    expect((await devices.get('a')).phase).toBe('installing');
    // An offset written like '+01:00' is the same instant as its UTC form.
    await devices.applyState('a', report('active', '2026-03-01T11:00:03+01:00'));
    expect((await devices.get('a')).phase).toBe('active');
    await devices.applyState('a', report('installing', '2026-03-01T10:00:02.500Z'));
    expect((await devices.get('a')).phase).toBe('active');
    // A clock corrected by an hour (no RTC, then NTP) must not freeze the device's state.
    await devices.applyState('a', report('installing', '2026-03-01T09:00:00.000Z'));
    expect((await devices.get('a')).phase).toBe('installing');
  });

  it('forgets a revoked device for authentication and the broker password file', async () => {
    const devices = new DeviceRepository(await backend.open());
    for (const id of ['a', 'b']) {
      await devices.create({ id, name: id, secretHash: hashSecret(id), profile: null, hardware });
      await devices.setBrokerHash(id, `$7$${id}`);
    }
    await devices.setOnline('b', true, new Date().toISOString());
    expect(await devices.secretHash('b')).toBe(hashSecret('b'));
    await devices.revoke('b');
    expect(await devices.secretHash('b')).toBeUndefined();
    expect(await devices.brokerCredentials()).toEqual([{ username: 'a', hash: '$7$a' }]);
    expect(await devices.get('b')).toMatchObject({ revoked: true, online: false });
  });
});

describeEachBackend('tokens', (backend) => {
  it('enrollment tokens are single-use by default and refuse revoked or expired ones', async () => {
    const tokens = new TokenRepository(await backend.open());
    const { token } = await tokens.createEnrollToken();
    await tokens.consumeEnrollToken(token);
    await expect(tokens.consumeEnrollToken(token)).rejects.toMatchObject({ code: 'ENROLL_TOKEN' });
    const revoked = (await tokens.createEnrollToken({ uses: 5 })).token;
    expect(await tokens.revokeEnrollToken(revoked)).toBe(true);
    expect(await tokens.revokeEnrollToken('enr_unknown')).toBe(false);
    await expect(tokens.consumeEnrollToken(revoked)).rejects.toMatchObject({ code: 'ENROLL_TOKEN' });
    const expired = (await tokens.createEnrollToken({ ttlSeconds: -1 })).token;
    await expect(tokens.consumeEnrollToken(expired)).rejects.toMatchObject({ code: 'ENROLL_TOKEN' });
  });

  it('grants exactly `uses` enrollments to concurrent requests', async () => {
    const store = await backend.open();
    // Two repositories on one store stand for two replicas racing for the last uses.
    const [one, two] = [new TokenRepository(store), new TokenRepository(store)];
    const { token } = await one.createEnrollToken({ uses: 3 });
    const results = await Promise.allSettled(
      Array.from({ length: 12 }, (_, i) => (i % 2 ? one : two).consumeEnrollToken(token)),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(3);
  });

  it('stores only hashes of API tokens and knows their roles', async () => {
    const store = await backend.open();
    const tokens = new TokenRepository(store);
    expect(await tokens.hasApiTokens()).toBe(false);
    const token = await tokens.createApiToken('ops', 'operator');
    const rows = await store.db.selectFrom('api_tokens').selectAll().execute();
    expect(JSON.stringify(rows)).not.toContain(token);
    expect(rows.map((r) => r.token_hash)).toEqual([hashSecret(token)]);
    expect(await tokens.apiTokenRole(token)).toEqual({ name: 'ops', role: 'operator' });
    expect(await tokens.apiTokenRole(`${token}x`)).toBeUndefined();
    expect(await tokens.hasApiTokens()).toBe(true);
  });
});
