import { defineConfig } from 'vitest/config';
import base from './vitest.config.js';

// The second pass of `npm test` (.ci/run): the tests that exercise the fleet (delivery,
// rollouts, faults, the CLI and security against a running cloud) again with the cloud on
// PostgreSQL behind a real Mosquitto (test/integration/support/backend-mode.ts). Files that
// only make sense on the embedded broker and SQLite skip there, saying why.
// Chosen to keep .ci/run under 25 minutes on 2 cores: left out are the agent-side kill -9 loop
// (faults/agent-kill: 20 kills of the agent, ~200 s; the backend only serves its deliveries,
// which the rollout and restart files cover), and CLI files whose store calls the store tests
// already run on both backends (cli/lineage, cli/device-tags, cli/agent-serve-flags).
export const PG_MOSQUITTO_FILES = [
  'test/integration/e2e/*.test.ts',
  'test/integration/cli/cli.test.ts',
  'test/integration/agent/serving.test.ts',
  'test/integration/security/*.test.ts',
  'test/faults/bad-model.test.ts',
  'test/faults/cloud-restart.test.ts',
  'test/faults/disk-full.test.ts',
  'test/faults/mosquitto-restart.test.ts',
  'test/faults/network-cut.test.ts',
];

export default defineConfig({
  test: {
    ...base.test,
    include: PG_MOSQUITTO_FILES,
    exclude: base.test?.exclude,
    env: { FLEETML_TEST_BACKEND: 'pg-mosquitto' },
  },
});
