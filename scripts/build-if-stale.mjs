// `npm start` runs the compiled fulcrum (dist/), not the TypeScript sources through tsx: tsx's
// loader thread and transformed sources cost ~60 MiB of RSS (195 vs 137 MiB at rest, 100 × 20
// catalog), which alone would miss issue 13's 100 MiB. This builds first when dist/ is missing or
// older than what it is built from, so `npm ci && npm start` still works on a fresh checkout.
// Plain JavaScript: Node 20 cannot run TypeScript without a loader, and loading one costs ~0.3 s.
import { spawnSync } from 'node:child_process';
import process from 'node:process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** What `npm run build` reads: the sources, the compiler settings, the pinned packages. */
const INPUTS = ['src', 'scripts/envoy-descriptor.ts', 'scripts/generate-prebuilt.ts', 'scripts/bundle.mjs', 'tsconfig.json', 'tsconfig.build.json', 'package-lock.json'];
/** What it writes last: the entry point, the Envoy descriptor and the admin's prebuilt code index (written after tsc). */
const OUTPUTS = ['dist/main.js', 'dist/xds/envoy-api.json', 'dist/admin/prebuilt/index.json'];

/** Newest modification time under a file or folder (0 when absent). */
function newest(path) {
  let stat;
  try {
    stat = statSync(path);
  } catch {
    return 0;
  }
  if (!stat.isDirectory()) return stat.mtimeMs;
  return readdirSync(path).reduce((max, name) => Math.max(max, newest(join(path, name))), stat.mtimeMs);
}

function oldestOutput() {
  const times = OUTPUTS.map(newest);
  return times.includes(0) ? 0 : Math.min(...times);
}

const built = oldestOutput();
const sources = Math.max(...INPUTS.map(newest));
if (built === 0 || sources > built) {
  process.stderr.write(built === 0 ? 'fulcrum: dist/ is missing; building it (npm run build)\n' : 'fulcrum: src/ changed since the last build; rebuilding (npm run build)\n');
  // Build output goes to stderr: stdout is fulcrum's log.
  const build = spawnSync('npm', ['run', '--silent', 'build'], { stdio: ['ignore', 2, 2], shell: process.platform === 'win32' });
  process.exit(build.status ?? 1);
}
