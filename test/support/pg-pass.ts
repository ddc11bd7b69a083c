import { mosquittoBinary } from '../integration/agent/mosquitto.js';
import { postgresUnavailable } from '../integration/scale/pg.js';

/**
 * Why the pg-mosquitto pass (vitest.pg.config.ts) cannot run on this machine, or null when it
 * can: it needs the test PostgreSQL (FLEETML_TEST_POSTGRES) and Debian's mosquitto. In CI
 * (CI=true) it never skips: .ci/run provides both, so a missing one is a failure, not a skip.
 */
export async function pgPassUnavailable(): Promise<string | null> {
  if (process.env.CI) return null;
  const postgres = await postgresUnavailable();
  if (postgres) return postgres;
  return mosquittoBinary() ? null : 'mosquitto is not installed (.ci/run installs it from Debian)';
}
