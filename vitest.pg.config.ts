import { defineConfig } from 'vitest/config';
import base from './vitest.config.js';

// The second pass of `npm test` (.ci/run): the tests that exercise the fleet (delivery,
// rollouts, faults, the CLI and security against a running cloud) again with the cloud on
// PostgreSQL behind a real Mosquitto (test/integration/support/backend-mode.ts). Files that
// only make sense on the embedded broker and SQLite skip there, saying why.
export const PG_MOSQUITTO_FILES = [
  'test/integration/e2e/*.test.ts',
  'test/integration/cli/cli.test.ts',
  'test/integration/cli/device-tags.test.ts',
  'test/integration/cli/lineage.test.ts',
  'test/integration/cli/agent-serve-flags.test.ts',
  'test/integration/agent/serving.test.ts',
  'test/integration/security/*.test.ts',
  'test/faults/*.test.ts',
];

export default defineConfig({
  test: {
    ...base.test,
    include: PG_MOSQUITTO_FILES,
    exclude: base.test?.exclude,
    env: { FLEETML_TEST_BACKEND: 'pg-mosquitto' },
  },
});
