import { configDefaults, defineConfig } from 'vitest/config';

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
  },
});
