import { FleetError } from '../../../shared/errors/index.js';
import type { Db } from '../store/db.js';
import { hashSecret, newSecret } from './secrets.js';

export type Role = 'viewer' | 'operator' | 'admin';
const ROLE_RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };

export function roleAllows(role: Role, needed: Role): boolean {
  return ROLE_RANK[role] >= ROLE_RANK[needed];
}

export interface TokenRepositoryOptions {
  /**
   * Fingerprint of the fleet key (shared/manifest fleetKeyFingerprint). Enrollment tokens carry
   * it after a dot (`enr_<secret>.<fingerprint>`): the agent pins the key out of band and
   * refuses an enrollment reply that offers another key or none.
   */
  fleetKeyFingerprint?: string;
}

/** Enrollment tokens (short-lived, limited uses) and API bearer tokens (with roles). */
export class TokenRepository {
  constructor(
    private readonly db: Db,
    private readonly o: TokenRepositoryOptions = {},
  ) {}

  /** Creates an enrollment token valid for `ttlSeconds` (default 1 h) and `uses` enrollments (default 1). */
  createEnrollToken(options: { ttlSeconds?: number; uses?: number } = {}): {
    token: string;
    expiresAt: string;
  } {
    const fingerprint = this.o.fleetKeyFingerprint ? `.${this.o.fleetKeyFingerprint}` : '';
    const token = `enr_${newSecret(24)}${fingerprint}`;
    const now = Date.now();
    const expiresAt = new Date(now + (options.ttlSeconds ?? 3600) * 1000).toISOString();
    this.db
      .prepare(
        'INSERT INTO enroll_tokens (token_hash, created_at, expires_at, uses_left) VALUES (?, ?, ?, ?)',
      )
      .run(hashSecret(token), new Date(now).toISOString(), expiresAt, options.uses ?? 1);
    return { token, expiresAt };
  }

  /** Uses one enrollment of a token; ENROLL_TOKEN when it is unknown, used up, revoked or expired. */
  consumeEnrollToken(token: string): void {
    const hash = hashSecret(token);
    const consumed = this.db.transaction(() => {
      const row = this.db
        .prepare('SELECT uses_left, expires_at, revoked FROM enroll_tokens WHERE token_hash = ?')
        .get(hash) as { uses_left: number; expires_at: string; revoked: number } | undefined;
      if (!row || row.revoked || row.uses_left <= 0 || Date.parse(row.expires_at) < Date.now()) return false;
      this.db.prepare('UPDATE enroll_tokens SET uses_left = uses_left - 1 WHERE token_hash = ?').run(hash);
      return true;
    })();
    if (!consumed)
      throw new FleetError('ENROLL_TOKEN', 'enrollment token is unknown, used up, revoked or expired');
  }

  revokeEnrollToken(token: string): boolean {
    return (
      this.db.prepare('UPDATE enroll_tokens SET revoked = 1 WHERE token_hash = ?').run(hashSecret(token))
        .changes > 0
    );
  }

  createApiToken(name: string, role: Role): string {
    const token = `fml_${newSecret(24)}`;
    this.db
      .prepare('INSERT INTO api_tokens (token_hash, name, role, created_at) VALUES (?, ?, ?, ?)')
      .run(hashSecret(token), name, role, new Date().toISOString());
    return token;
  }

  /** The role of a bearer token, or undefined when it is unknown or revoked. */
  apiTokenRole(token: string): { name: string; role: Role } | undefined {
    const row = this.db
      .prepare('SELECT name, role FROM api_tokens WHERE token_hash = ? AND revoked = 0')
      .get(hashSecret(token)) as { name: string; role: Role } | undefined;
    return row;
  }

  hasApiTokens(): boolean {
    return this.db.prepare('SELECT 1 FROM api_tokens WHERE revoked = 0 LIMIT 1').get() !== undefined;
  }
}
