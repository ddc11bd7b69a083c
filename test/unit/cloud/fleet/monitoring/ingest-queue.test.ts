import { describe, expect, it } from 'vitest';
import { EnrollmentLedger } from '../../../../../cloud/fleet/identity/enroll-requests.js';
import { IngestQueue } from '../../../../../cloud/fleet/ingest/ingest-queue.js';
import { createMessageRouter } from '../../../../../cloud/fleet/ingest/router.js';
import { isFleetError } from '../../../../../shared/errors/index.js';
import { createLogger } from '../../../../../shared/logger.js';
import { deviceTopic, encodeJson } from '../../../../../shared/protocol/index.js';
import { monitorFixture } from './fixture.js';
import { record, summarize } from './synthetic.js';

const lat = summarize([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
const batch = (from: number, to: number, at = Date.now()) =>
  Array.from({ length: to - from + 1 }, (_, i) => record(from + i, at, lat));
const rows = (f: Awaited<ReturnType<typeof monitorFixture>>, device?: string) => f.telemetry.count(device);
const rollupSum = (f: Awaited<ReturnType<typeof monitorFixture>>, resolution: number) =>
  f.db
    .prepare(
      'SELECT coalesce(sum(records), 0) records, coalesce(sum(lat_count), 0) n FROM telemetry_rollup WHERE resolution = ?',
    )
    .get(resolution) as { records: number; n: number };

describe('ingest queue', () => {
  it('stores resent records once and counts them once in the rollups', async () => {
    const f = await monitorFixture();
    await f.addDevice('d1');
    expect(await f.monitor.ingest.submit('d1', batch(1, 10))).toEqual({ added: 10, duplicates: 0 });
    expect(await f.monitor.ingest.submit('d1', batch(1, 10))).toEqual({ added: 0, duplicates: 10 });
    // Two overlapping resends in the same flush: dedupe holds inside one transaction too.
    const [a, b] = await Promise.all([
      f.monitor.ingest.submit('d1', batch(5, 15)),
      f.monitor.ingest.submit('d1', batch(12, 20)),
    ]);
    expect(a).toEqual({ added: 5, duplicates: 6 });
    expect(b).toEqual({ added: 5, duplicates: 4 });
    expect(await rows(f, 'd1')).toBe(20);
    expect(rollupSum(f, 60_000)).toEqual({ records: 20, n: 200 });
    expect(rollupSum(f, 3_600_000)).toEqual({ records: 20, n: 200 });
    expect(f.monitor.ingest.stats).toMatchObject({ added: 20, duplicates: 20 });
  });

  it('commits many devices in one transaction and resolves only after the commit', async () => {
    // A delay far above the 5 ms look below: on a loaded machine timers fire late.
    const f = await monitorFixture({ ingestMaxDelayMs: 1000 });
    for (let d = 0; d < 50; d++) await f.addDevice(`d${d}`);
    let resolved = 0;
    const pending = Array.from({ length: 50 }, (_, d) =>
      f.monitor.ingest.submit(`d${d}`, batch(1, 5)).then(async (r) => {
        // The commit happened before the promise resolved: the rows are visible.
        expect(await rows(f, `d${d}`)).toBe(5);
        resolved++;
        return r;
      }),
    );
    // Read synchronously, before the flush timer can fire.
    expect(f.db.prepare('SELECT count(*) n FROM telemetry').get()).toEqual({ n: 0 });
    expect(f.monitor.ingest.pending).toBe(250);
    await new Promise((r) => setTimeout(r, 5));
    expect(resolved).toBe(0);
    await Promise.all(pending);
    expect(resolved).toBe(50);
    expect(f.monitor.ingest.stats.commits).toBe(1);
    expect(await rows(f)).toBe(250);
    const seen = f.db.prepare('SELECT count(*) n FROM devices WHERE last_seen_at IS NOT NULL').get() as {
      n: number;
    };
    expect(seen.n).toBe(50);
  });

  it('flushes at the record limit without waiting and never splits a batch', async () => {
    const f = await monitorFixture({ ingestMaxDelayMs: 10_000, ingestMaxRecords: 100 });
    await f.addDevice('d1');
    const first = f.monitor.ingest.submit('d1', batch(1, 60));
    const second = f.monitor.ingest.submit('d1', batch(61, 160));
    await Promise.all([first, second]);
    expect(await rows(f)).toBe(160);
    expect(f.monitor.ingest.stats.commits).toBe(2);
  });

  it('refuses batches beyond the pending bound with a retryable code', async () => {
    const f = await monitorFixture({
      ingestMaxDelayMs: 10_000,
      ingestMaxRecords: 10_000,
      ingestMaxPendingRecords: 15,
    });
    await f.addDevice('d1');
    const ok = f.monitor.ingest.submit('d1', batch(1, 10));
    const refused = await f.monitor.ingest.submit('d1', batch(11, 20)).catch((e) => e);
    expect(isFleetError(refused) && refused.code).toBe('INGEST_OVERLOADED');
    f.monitor.ingest.flush();
    expect(await ok).toEqual({ added: 10, duplicates: 0 });
  });

  it('isolates a batch whose commit fails; the others in its flush are stored', async () => {
    const f = await monitorFixture({ ingestMaxDelayMs: 20 });
    await f.addDevice('d1');
    await f.addDevice('d2');
    f.db.exec(`CREATE TRIGGER poison BEFORE INSERT ON telemetry WHEN NEW.seq = 666
      BEGIN SELECT RAISE(ABORT, 'simulated I/O error'); END`);
    const good = f.monitor.ingest.submit('d1', batch(1, 5));
    const bad = f.monitor.ingest.submit('d2', [...batch(1, 3), record(666, Date.now(), lat)]);
    expect(await good).toEqual({ added: 5, duplicates: 0 });
    const error = await bad.catch((e) => e);
    expect(isFleetError(error) && error.code).toBe('INGEST_FAILED');
    expect(await rows(f, 'd2')).toBe(0);
    expect(rollupSum(f, 60_000).records).toBe(5);
  });

  it('buckets records by arrival time when the device clock is implausible', async () => {
    const f = await monitorFixture();
    await f.addDevice('d1');
    await f.monitor.ingest.submit('d1', [record(1, '1970-01-01T00:00:10.000Z', lat)]);
    const row = f.db.prepare('SELECT bucket_start FROM telemetry_rollup WHERE resolution = 60000').get() as {
      bucket_start: number;
    };
    expect(Math.abs(row.bucket_start - Date.now())).toBeLessThan(120_000);
  });
});

describe('router with the ingest queue', () => {
  it('publishes the ack only after the batch committed, and none when it failed', async () => {
    const f = await monitorFixture({ ingestMaxDelayMs: 10 });
    await f.addDevice('d1');
    const acks: Array<{ topic: string; from: number; to: number; stored: number }> = [];
    const router = createMessageRouter({
      devices: f.devices,
      telemetry: f.telemetry,
      enrollments: new EnrollmentLedger(f.fleet),
      ingest: f.monitor.ingest,
      logger: createLogger({ name: 'test', level: 'silent' }),
      fleetPublicKey: 'unused',
      matchProfile: () => null,
      publisher: {
        publish: async (topic: string, payload: Buffer) => {
          const ack = JSON.parse(payload.toString());
          acks.push({ topic, from: ack.from, to: ack.to, stored: await f.telemetry.count('d1') });
        },
      },
    });
    const topic = deviceTopic('d1', 'telemetry');
    await Promise.all([
      router.handle(topic, encodeJson({ v: 1, records: batch(1, 4) })),
      router.handle(topic, encodeJson({ v: 1, records: batch(5, 8) })),
    ]);
    expect(acks.map((a) => [a.from, a.to])).toEqual([
      [1, 4],
      [5, 8],
    ]);
    // Both batches were in one group commit and were stored when the first ack went out.
    expect(acks.every((a) => a.stored === 8)).toBe(true);
    f.db.exec(`CREATE TRIGGER poison BEFORE INSERT ON telemetry BEGIN SELECT RAISE(ABORT, 'disk full'); END`);
    await router.handle(topic, encodeJson({ v: 1, records: batch(9, 10) }));
    expect(acks).toHaveLength(2);
    expect(router.stats.rejectedTelemetry).toBe(1);
    expect(router.stats.rejectedByCode.INGEST_FAILED).toBe(1);
  });

  it('works standalone and refuses batches once closed', async () => {
    const f = await monitorFixture();
    await f.addDevice('d1');
    const queue = new IngestQueue({ db: f.db, records: f.records, rollups: f.monitor.rollups });
    expect(await queue.submit('d1', batch(1, 3))).toEqual({ added: 3, duplicates: 0 });
    queue.close();
    await expect(queue.submit('d1', batch(4, 4))).rejects.toThrow(/closed/);
  });
});
