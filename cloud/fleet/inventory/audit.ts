import type { Db } from '../store/db.js';

/** Append-only record of every change: who, what, when. */
export class AuditLog {
  constructor(private readonly db: Db) {}

  record(actor: string, action: string, details: Record<string, unknown>): void {
    this.db
      .prepare('INSERT INTO audit (at, actor, action, details) VALUES (?, ?, ?, ?)')
      .run(new Date().toISOString(), actor, action, JSON.stringify(details));
  }

  recent(limit = 100): Array<{ at: string; actor: string; action: string; details: unknown }> {
    return (
      this.db
        .prepare('SELECT at, actor, action, details FROM audit ORDER BY id DESC LIMIT ?')
        .all(limit) as Array<{
        at: string;
        actor: string;
        action: string;
        details: string;
      }>
    ).map((r) => ({ ...r, details: JSON.parse(r.details) }));
  }
}
