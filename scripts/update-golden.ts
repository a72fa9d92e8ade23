/**
 * Regenerates the translator golden files: test/xds/golden/<case>.out.yaml from <case>.in.yaml
 * (and <case>.weights.yaml). `npm run golden:update` for all cases, or name some:
 * `npm run golden:update -- lb-policies listeners`. Review the diff before committing.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { goldenCases, goldenPath, renderCase } from '../test/xds/golden.js';

const wanted = process.argv.slice(2);
const all = goldenCases();
const unknown = wanted.filter((n) => !all.includes(n));
if (unknown.length > 0) {
  console.error(`no such golden case: ${unknown.join(', ')} (cases: ${all.join(', ')})`);
  process.exit(2);
}
let changed = 0;
for (const name of wanted.length > 0 ? wanted : all) {
  const path = goldenPath(name, 'out');
  const next = renderCase(name);
  let before: string | undefined;
  try {
    before = readFileSync(path, 'utf8');
  } catch {
    before = undefined;
  }
  if (before === next) continue;
  writeFileSync(path, next);
  changed++;
  console.log(`${before === undefined ? 'created' : 'updated'} ${path}`);
}
console.log(`${changed} of ${wanted.length > 0 ? wanted.length : all.length} golden files changed`);
