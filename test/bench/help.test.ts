import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { usageOf } from '../../bench/help.js';

const help = (script: string) => spawnSync(process.execPath, ['--import', 'tsx', script, '--help'], { encoding: 'utf8', timeout: 60_000 });

/** `--help` on a benchmark prints its usage and exits 0, rather than failing in parseArgs. */
describe('benchmark --help', () => {
  it.each(['bench/startup.ts', 'bench/memory.ts', 'bench/debounce-burst.ts'])('%s --help prints its options', (script) => {
    const run = help(script);
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(run.stdout).toContain('Options:');
    expect(run.stdout).toContain('--help');
  }, 90_000);

  // Every script that parses options, in bench/ and its folders (the suites, the demo): a new
  // one that forgets --help fails here.
  const parsing = readdirSync('bench', { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts') && readFileSync(`bench/${f}`, 'utf8').includes('parseArgs('))
    .map((f) => `bench/${f}`)
    .sort();

  it('finds the scripts that parse options', () => {
    expect(parsing.length).toBeGreaterThan(20);
  });

  it.each(parsing)('%s --help exits 0 with its usage, running nothing', (script) => {
    const run = help(script);
    expect(run.stderr).not.toMatch(/Error/);
    expect(run.status).toBe(0);
    expect(run.stdout.trim().length).toBeGreaterThan(40);
  }, 90_000);
});

describe('usageOf', () => {
  it('is the first doc comment without its markers', () => {
    expect(usageOf('import x;\n/**\n * One line.\n *\n *   npx tsx a.ts [--n N]\n */\nconst a = 1;\n/** later */')).toBe('One line.\n\n  npx tsx a.ts [--n N]');
    expect(usageOf('no comment')).toBe('');
  });
});
