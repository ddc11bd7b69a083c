import pg from 'pg';

/** What one simulated device sent: seqs [firstSeq, nextSeq), of which `unacked` are not acknowledged. */
export interface DeviceLedger {
  deviceId: string;
  firstSeq: number;
  nextSeq: number;
  unacked: number[];
}

export interface TelemetryAudit {
  sent: number;
  acked: number;
  /** Rows in the telemetry table (every device). */
  storedRows: number;
  /** Acknowledged records that are not stored (must be 0). */
  lost: number;
  /** Rows beyond the first for one (device, seq) (must be 0). */
  storedTwice: number;
}

/**
 * Checks, record by record, that every telemetry record the simulated devices had acknowledged
 * at the time of their ledgers is stored in PostgreSQL, and that no (device, seq) is stored
 * twice. One statement, so the counts come from one snapshot of the table.
 */
export async function auditTelemetry(databaseUrl: string, ledgers: DeviceLedger[]): Promise<TelemetryAudit> {
  const sent = ledgers.reduce((n, l) => n + (l.nextSeq - l.firstSeq), 0);
  const unackedCount = ledgers.reduce((n, l) => n + l.unacked.length, 0);
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<Record<string, string>>(
      `WITH s AS (SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS s(device_id, first_seq, next_seq)),
            u AS (SELECT * FROM unnest($4::text[], $5::bigint[]) AS u(device_id, seq)),
            sent AS (
              SELECT t.device_id, t.seq, count(*) n FROM telemetry t
              JOIN s ON s.device_id = t.device_id AND t.seq >= s.first_seq AND t.seq < s.next_seq
              GROUP BY 1, 2)
       SELECT (SELECT count(*) FROM sent) sent_stored,
              (SELECT count(*) FROM sent JOIN u USING (device_id, seq)) unacked_stored,
              (SELECT count(*) FROM telemetry) rows,
              (SELECT count(*) FROM (SELECT 1 FROM telemetry GROUP BY device_id, seq) d) distinct_keys`,
      [
        ledgers.map((l) => l.deviceId),
        ledgers.map((l) => l.firstSeq),
        ledgers.map((l) => l.nextSeq),
        ledgers.flatMap((l) => l.unacked.map(() => l.deviceId)),
        ledgers.flatMap((l) => l.unacked),
      ],
    );
    const r = rows[0];
    const acked = sent - unackedCount;
    const ackedStored = Number(r.sent_stored) - Number(r.unacked_stored);
    return {
      sent,
      acked,
      storedRows: Number(r.rows),
      lost: acked - ackedStored,
      storedTwice: Number(r.rows) - Number(r.distinct_keys),
    };
  } finally {
    await client.end();
  }
}
