import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Envoy end-to-end files each start real processes; two cores cannot run many at once.
    maxConcurrency: 1,
    fileParallelism: true,
    maxWorkers: 2,
  },
});
