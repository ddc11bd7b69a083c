import type { FleetDb, FleetStore } from '../store/kysely.js';
import { inTransaction } from '../store/kysely.js';
import { lockForTransaction } from '../store/locks.js';

/**
 * The cloud's epoch: a millisecond timestamp, new on every start and always above the last one
 * stored. Targets carry it next to their per-device sequence, so a cloud whose database was
 * restored from a backup (its sequences went back) is not ignored by devices that saw higher
 * sequences: they follow the newer epoch, which only the fleet key can sign. Replicas sharing a
 * database share it too (targets read it when they are issued: see `currentEpoch`).
 */
export async function beginEpoch(store: FleetStore, nowMs = Date.now()): Promise<number> {
  return inTransaction(store, async (tx) => {
    await lockForTransaction(tx, 'epoch', 'epoch');
    const epoch = Math.max(nowMs, (await currentEpoch(tx.db)) + 1);
    await tx.db
      .insertInto('cloud_state')
      .values({ key: 'epoch', value: String(epoch) })
      .onConflict((c) => c.column('key').doUpdateSet({ value: String(epoch) }))
      .execute();
    return epoch;
  });
}

/** The newest epoch any replica began (0 before the first start). */
export async function currentEpoch(db: FleetDb): Promise<number> {
  const row = await db
    .selectFrom('cloud_state')
    .select('value')
    .where('key', '=', 'epoch')
    .executeTakeFirst();
  return row ? Number(row.value) : 0;
}
