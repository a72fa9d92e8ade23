import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

/** `--help` on a benchmark prints its usage and exits 0, rather than failing in parseArgs. */
describe('benchmark --help', () => {
  it.each(['bench/startup.ts', 'bench/memory.ts', 'bench/debounce-burst.ts'])('%s --help prints its options', (script) => {
    const run = spawnSync(process.execPath, ['--import', 'tsx', script, '--help'], { encoding: 'utf8', timeout: 60_000 });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(run.stdout).toContain('Options:');
    expect(run.stdout).toContain('--help');
  }, 90_000);
});
