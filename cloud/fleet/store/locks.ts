import { sql } from 'kysely';
import type { FleetStore } from './kysely.js';

/**
 * First keys of the two-key advisory locks that serialise read-then-write steps across cloud
 * replicas (the job queue uses 0x666c6d20, pg-jobs.ts): one namespace per kind of step, the
 * second key a hash of what is being changed.
 */
export const LOCK_NAMESPACES = {
  /** Numbering a new release of a model name (inventory/models.ts). */
  release: 0x666c6d30,
  /** Issuing the next target of a device (delivery/targets.ts). */
  target: 0x666c6d31,
  /** Starting a new epoch (delivery/epoch.ts). */
  epoch: 0x666c6d32,
} as const;

/**
 * Holds `key` of `namespace` until the transaction `tx` ends. On PostgreSQL a transaction-scoped
 * advisory lock, so two replicas doing the same step wait for each other (it also covers rows
 * that do not exist yet, which `FOR UPDATE` cannot). On SQLite nothing: the store has one
 * connection, and a transaction holds it to the end.
 */
export async function lockForTransaction(
  tx: FleetStore,
  namespace: keyof typeof LOCK_NAMESPACES,
  key: string,
): Promise<void> {
  if (tx.dialect !== 'postgres') return;
  await sql`SELECT pg_advisory_xact_lock(${LOCK_NAMESPACES[namespace]}, hashtext(${key}))`.execute(tx.db);
}
