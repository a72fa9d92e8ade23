import { existsSync } from 'node:fs';

const repo = new URL('../../', import.meta.url).pathname;

/**
 * The Node arguments that run the fulcrum command in tests spawning it as a process: the
 * TypeScript sources through tsx, or with FULCRUM_TEST_DIST=1 the bundle `npm run build` wrote
 * (dist/main.js, what `npm start`, the image and the `fulcrum` bin run), so the same suites prove
 * the shipped build. Relative to the repository root (the tests' cwd).
 */
export function fulcrumCommand(): string[] {
  if (process.env.FULCRUM_TEST_DIST !== '1') return ['--import', 'tsx', 'src/main.ts'];
  if (!existsSync(`${repo}dist/main.js`)) throw new Error('FULCRUM_TEST_DIST=1: dist/main.js is missing; run `npm run build` first');
  return ['dist/main.js'];
}
