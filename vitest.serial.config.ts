import { defineConfig } from 'vitest/config';
import base from './vitest.config.js';

// Tests that restart servers other tests share (the local PostgreSQL): one file at a time,
// after the other passes (.ci/run, `npm run test:serial`).
export default defineConfig({
  test: {
    ...base.test,
    include: ['test/**/*.serial.test.ts'],
    exclude: [],
    fileParallelism: false,
  },
});
