import { defineConfig } from 'vitest/config';
import { pgPassUnavailable } from './test/support/pg-pass.js';
import base from './vitest.config.js';

// The second pass of `npm test` (.ci/run): the tests that exercise the fleet (delivery,
// rollouts, faults, the CLI and security against a running cloud) again with the cloud on
// PostgreSQL behind a real Mosquitto (test/integration/support/backend-mode.ts). Files that
// only make sense on the embedded broker and SQLite skip there, saying why.
// Chosen to keep .ci/run under 25 minutes on 2 cores. Left out, each for a reason:
// - faults/agent-kill: 20 kill -9 of the agent, ~200 s; the backend only serves its deliveries,
//   which the rollout and restart files cover;
// - cli/lineage, cli/device-tags, cli/agent-serve-flags: their store calls are covered by the
//   store tests, which run on both backends in the first pass (support/backends.ts);
// - security/revocation: its premise is a second session under a device's credentials, which
//   Mosquitto never allows (one client id per device); revocation on Mosquitto is
//   security/mosquitto-eviction, which is in the list;
// - security/{mqtt-limits,http-limits,sniffer}: limits and TLS of the default configuration's
//   own listeners (embedded broker, HTTP); security/rogue-broker: a fake cloud, no fleet at all.
export const PG_MOSQUITTO_FILES = [
  'test/integration/e2e/*.test.ts',
  'test/integration/cli/cli.test.ts',
  'test/integration/cli/rollout-steer.test.ts',
  'test/integration/agent/serving.test.ts',
  'test/integration/security/*.test.ts',
  'test/security/artifact-theft.test.ts',
  'test/security/forged-target.test.ts',
  'test/security/golden-mismatch.test.ts',
  'test/security/mosquitto-eviction.test.ts',
  'test/faults/bad-model.test.ts',
  'test/faults/cloud-restart.test.ts',
  'test/faults/disk-full.test.ts',
  'test/faults/mosquitto-restart.test.ts',
  'test/faults/network-cut.test.ts',
];

export default defineConfig(async () => {
  // Without PostgreSQL or Mosquitto (outside CI) the pass is skipped as a whole, saying why,
  // rather than failing in every file.
  const skip = await pgPassUnavailable();
  if (skip) console.warn(`test:pg skipped (FLEETML_TEST_BACKEND=pg-mosquitto pass): ${skip}`);
  return {
    test: {
      ...base.test,
      include: skip ? [] : PG_MOSQUITTO_FILES,
      passWithNoTests: skip !== null,
      exclude: base.test?.exclude,
      // On top of the base env (the suite's XDG_STATE_HOME), not instead of it.
      env: { ...base.test?.env, FLEETML_TEST_BACKEND: 'pg-mosquitto' },
    },
  };
});
