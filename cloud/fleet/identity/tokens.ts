import { FleetError } from '../../../shared/errors/index.js';
import type { FleetDb, FleetStore } from '../store/kysely.js';
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
  private readonly db: FleetDb;

  constructor(
    store: FleetStore,
    private readonly o: TokenRepositoryOptions = {},
  ) {
    this.db = store.db;
  }

  /** Creates an enrollment token valid for `ttlSeconds` (default 1 h) and `uses` enrollments (default 1). */
  async createEnrollToken(options: { ttlSeconds?: number; uses?: number } = {}): Promise<{
    token: string;
    expiresAt: string;
  }> {
    const fingerprint = this.o.fleetKeyFingerprint ? `.${this.o.fleetKeyFingerprint}` : '';
    const token = `enr_${newSecret(24)}${fingerprint}`;
    const now = Date.now();
    const expiresAt = new Date(now + (options.ttlSeconds ?? 3600) * 1000).toISOString();
    await this.db
      .insertInto('enroll_tokens')
      .values({
        token_hash: hashSecret(token),
        created_at: new Date(now).toISOString(),
        expires_at: expiresAt,
        uses_left: options.uses ?? 1,
      })
      .execute();
    return { token, expiresAt };
  }

  /** Uses one enrollment of a token; ENROLL_TOKEN when it is unknown, used up, revoked or expired. */
  async consumeEnrollToken(token: string): Promise<void> {
    if (!(await this.tryConsumeEnrollToken(token)))
      throw new FleetError('ENROLL_TOKEN', 'enrollment token is unknown, used up, revoked or expired');
  }

  /** Uses one enrollment of a token; false when it is unknown, used up, revoked or expired. */
  async tryConsumeEnrollToken(token: string): Promise<boolean> {
    // One conditional UPDATE: two replicas enrolling with the last use of a token cannot both
    // succeed (the row lock on PostgreSQL, the write lock on SQLite serialise them).
    const result = await this.db
      .updateTable('enroll_tokens')
      .set((eb) => ({ uses_left: eb('uses_left', '-', 1) }))
      .where('token_hash', '=', hashSecret(token))
      .where('revoked', '=', 0)
      .where('uses_left', '>', 0)
      .where('expires_at', '>=', new Date().toISOString())
      .executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  async revokeEnrollToken(token: string): Promise<boolean> {
    const result = await this.db
      .updateTable('enroll_tokens')
      .set({ revoked: 1 })
      .where('token_hash', '=', hashSecret(token))
      .executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  async createApiToken(name: string, role: Role): Promise<string> {
    const token = `fml_${newSecret(24)}`;
    await this.db
      .insertInto('api_tokens')
      .values({ token_hash: hashSecret(token), name, role, created_at: new Date().toISOString() })
      .execute();
    return token;
  }

  /** The role of a bearer token, or undefined when it is unknown or revoked. */
  async apiTokenRole(token: string): Promise<{ name: string; role: Role } | undefined> {
    const row = await this.db
      .selectFrom('api_tokens')
      .select(['name', 'role'])
      .where('token_hash', '=', hashSecret(token))
      .where('revoked', '=', 0)
      .executeTakeFirst();
    return row ? { name: row.name, role: row.role as Role } : undefined;
  }

  async hasApiTokens(): Promise<boolean> {
    const row = await this.db
      .selectFrom('api_tokens')
      .select('token_hash')
      .where('revoked', '=', 0)
      .limit(1)
      .executeTakeFirst();
    return row !== undefined;
  }
}
