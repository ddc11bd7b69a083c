import type { Db } from '../store/db.js';

/** The latest benchmark a device reported for an artifact. */
export interface ArtifactBench {
  sha256: string;
  deviceId: string;
  p50Ms: number;
}

/** Where lineage reads what devices measured (bench reports live with the telemetry). */
export type ArtifactBenchSource = (sha256s: string[]) => Promise<ArtifactBench[]>;

/**
 * Latest benchmark per (device, artifact) for these artifacts, from the SQLite file's
 * bench_reports, where the router stores them; without joins, so the devices can live in
 * another store (inventory/lineage.ts looks up their profiles in the fleet store).
 */
export function sqliteArtifactBenches(db: Db): ArtifactBenchSource {
  return async (sha256s) => {
    if (sha256s.length === 0) return [];
    const marks = sha256s.map(() => '?').join(', ');
    return db
      .prepare(
        `SELECT sha256, device_id deviceId, p50_ms p50Ms FROM bench_reports
         WHERE id IN (SELECT max(id) FROM bench_reports WHERE sha256 IN (${marks}) GROUP BY device_id, sha256)`,
      )
      .all(...sha256s) as ArtifactBench[];
  };
}
