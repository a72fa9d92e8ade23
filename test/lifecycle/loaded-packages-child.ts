/**
 * Child process of loaded-packages.test.ts: starts fulcrum on the embedded default config and
 * prints, as one JSON line, every file the process loaded by then. ES modules are seen through a
 * load hook (it runs in the hooks thread, so it reports on stderr), CommonJS ones in require's cache.
 */
import { createRequire, register } from 'node:module';

const hook = `export async function load(url, context, next) {
  const result = await next(url, context);
  process.stderr.write('LOADED ' + url + '\\n');
  return result;
}`;
register(`data:text/javascript,${encodeURIComponent(hook)}`);

const { startFulcrum } = await import('../../src/main.js');
const fulcrum = await startFulcrum({ configPath: process.argv[2] ?? 'examples/fulcrum.yaml', xdsPort: 0, logLevel: 'warn' });
process.stdout.write(`${JSON.stringify(Object.keys(createRequire(import.meta.url).cache))}\n`);
await fulcrum.stop();
