import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { GOLDEN_DIR, goldenCases, goldenPath, renderCase } from './golden.js';

/** The translator against its golden files: a difference is a change to review, then regenerate. */
describe('translator golden files', () => {
  const cases = goldenCases();

  test('there are cases, and every file in golden/ belongs to one', () => {
    expect(cases.length).toBeGreaterThan(0);
    const known = new Set(cases.flatMap((c) => [`${c}.in.yaml`, `${c}.out.yaml`, `${c}.weights.yaml`]));
    const stray = readdirSync(GOLDEN_DIR).filter((f) => f !== 'README.md' && !known.has(f));
    expect(stray, 'files in test/xds/golden/ that no case reads').toEqual([]);
  });

  test.each(cases)('%s', (name) => {
    const out = goldenPath(name, 'out');
    expect(existsSync(out), `${name}.out.yaml is missing: run npm run golden:update`).toBe(true);
    const want = readFileSync(out, 'utf8');
    expect(renderCase(name), `translator output differs from ${name}.out.yaml; review, then run npm run golden:update`).toBe(want);
  });
});
