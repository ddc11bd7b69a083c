import { configDefaults, defineConfig } from 'vitest/config';
import { TEST_STATE_HOME } from './test/support/state-home.js';

// Tests run against real components (broker, SQLite, onnxruntime), so give them room:
// 2 cores are shared by forked workers, and integration tests start processes.
// *.serial.test.ts restart shared servers (PostgreSQL): vitest.serial.config.ts runs them alone.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: [...configDefaults.exclude, 'test/**/*.serial.test.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // `fleetml cloud start` notes where it runs under XDG_STATE_HOME: keep the tests' notes
    // out of the developer's home (test/support/global-setup.ts checks that they stay out).
    env: { XDG_STATE_HOME: TEST_STATE_HOME },
    globalSetup: ['test/support/global-setup.ts'],
  },
});
