import { defineConfig } from 'vitest/config';

// Tests run against real components (broker, SQLite, onnxruntime), so give them room:
// 2 cores are shared by forked workers, and integration tests start processes.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
