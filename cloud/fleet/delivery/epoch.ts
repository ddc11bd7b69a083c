import type { Db } from '../store/db.js';

/**
 * The cloud's epoch: a millisecond timestamp, new on every start and always above the last one
 * stored. Targets carry it next to their per-device sequence, so a cloud whose database was
 * restored from a backup (its sequences went back) is not ignored by devices that saw higher
 * sequences: they follow the newer epoch, which only the fleet key can sign.
 */
export function beginEpoch(db: Db, nowMs = Date.now()): number {
  const row = db.prepare("SELECT value FROM cloud_state WHERE key = 'epoch'").get() as
    | { value: string }
    | undefined;
  const epoch = Math.max(nowMs, (row ? Number(row.value) : 0) + 1);
  db.prepare(
    "INSERT INTO cloud_state (key, value) VALUES ('epoch', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
  ).run(String(epoch));
  return epoch;
}
