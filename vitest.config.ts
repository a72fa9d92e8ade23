import { defineConfig } from 'vitest/config';
import { scaled } from './test/support/timing.js';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Deadlines stretch with FULCRUM_TEST_TIME_FACTOR on a slow machine (test/support/timing.ts).
    testTimeout: scaled(30_000),
    hookTimeout: scaled(60_000),
    // Envoy end-to-end files each start real processes; two cores cannot run many at once.
    maxConcurrency: 1,
    fileParallelism: true,
    maxWorkers: 2,
  },
});
