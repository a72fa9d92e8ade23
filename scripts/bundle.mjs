// `npm run build`'s bundling step: src/main.ts and what it imports become a few ES module files
// in dist/ instead of ~900 (our ~200 modules, fastify, grpc-js, protobufjs, TypeBox's ~250, …).
// Resolving, reading and linking those files one by one was most of a start's CPU (bench/RESULTS.md,
// "start5"). What main.ts imports with `import()` (the Kubernetes source, the etcd store, the
// Swagger UI) stays in chunks of its own, loaded as before only when a configuration uses it.
// Plain JavaScript, like build-if-stale.mjs: it runs before anything is compiled.
import { build } from 'esbuild';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { relative } from 'node:path';
import process from 'node:process';

/**
 * Loaded from node_modules at run time, not bundled. better-sqlite3 and koffi: native addons
 * found through their package folders (koffi's binary is in its platform's package; `serve`
 * loads it after start-up). etcd3, @fastify/swagger-ui, @fastify/static: read their own files
 * (.proto, the UI's static assets) next to their code (__dirname); cockatiel: etcd3's own, so the
 * retry policies the etcd store hands it are of the copy it knows. pino-pretty: required through
 * createRequire already. The others load only when a configuration or request uses them.
 * (`yaml` is bundled, and also required from node_modules by the worker thread that parses a
 * large config file: src/sources/yaml-off-thread.ts.)
 */
const EXTERNAL = ['better-sqlite3', 'koffi', 'etcd3', 'cockatiel', '@fastify/swagger-ui', '@fastify/static', 'pino-pretty'];

/**
 * Every output file sits in dist/ itself, so a module's `import.meta.url` is rewritten to the
 * URL its own file had in the per-module layout (dist/xds/envoy-api.js for src/xds/envoy-api.ts):
 * the paths it builds from it (dist/xds/envoy-api.json, ../../proto, ../../package.json) stay true.
 */
const keepModuleUrls = {
  name: 'keep-module-urls',
  setup(b) {
    b.onLoad({ filter: /\/src\/.*\.ts$/ }, async ({ path }) => {
      const source = await readFile(path, 'utf8');
      const own = `./${relative('src', path).replace(/\.ts$/, '.js')}`;
      const contents = asciiRawTemplates(source.replaceAll('import.meta.url', `new URL(${JSON.stringify(own)}, import.meta.url).href`));
      return { contents, loader: 'ts' };
    });
  },
};

/**
 * A few bundled CommonJS packages find files next to their own code through __dirname (grpc-js its
 * channelz and ORCA .proto files, pino its transport worker, @fastify/swagger its package.json).
 * In the bundle those names are given the values they had: the module's file, resolved from dist/
 * at run time like any import of the package.
 */
const keepPackageDirnames = {
  name: 'keep-package-dirnames',
  setup(b) {
    b.onLoad({ filter: /\/node_modules\/.*\.[cm]?js$/ }, async ({ path }) => {
      const source = await readFile(path, 'utf8');
      if (!/\b__(dirname|filename)\b/.test(source)) return undefined;
      const inPackages = path.split('/node_modules/');
      if (inPackages.length !== 2) throw new Error(`${path}: uses __dirname from a nested node_modules folder; mark its package external`);
      const file = `require.resolve(${JSON.stringify(inPackages[1])})`;
      const names = `var __filename = ${file}, __dirname = require('node:path').dirname(__filename);\n`;
      return { contents: names + source, loader: 'js' };
    });
  },
};

/**
 * One character outside Latin-1 in a file and V8 holds its whole source two bytes per character:
 * main.js's 2.2 MB would take 4.5 MB of heap for as long as the process runs. esbuild escapes
 * such characters everywhere but in String.raw templates (escaping would change their value), which
 * the dashboard's page, script and style are. Those without substitutions become plain string
 * literals of the same value, non-ASCII characters escaped (\uXXXX).
 */
function asciiRawTemplates(source) {
  return source.replace(/String\.raw`((?:[^`\\$]|\\[\s\S]|\$(?!\{))*)`/g, (whole, raw) => {
    if (!/[^\t\n\r\x20-\x7e]/.test(raw)) return whole;
    const literal = JSON.stringify(raw.replace(/\r\n?/g, '\n'));
    return literal.replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  });
}

/** CommonJS packages in an ES module bundle still call require() (node: built-ins mostly). */
const BANNER = "import { createRequire as __fulcrumRequire } from 'node:module'; const require = __fulcrumRequire(import.meta.url);";

await rm('dist', { recursive: true, force: true });
const result = await build({
  entryPoints: { main: 'src/main.ts' },
  outdir: 'dist',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  chunkNames: 'chunk-[hash]',
  external: EXTERNAL,
  sourcemap: true,
  banner: { js: BANNER },
  plugins: [keepModuleUrls, keepPackageDirnames],
  metafile: true,
  // Whitespace and syntax only, names kept (stack traces stay readable; source maps map the rest):
  // V8 parses a third less (bench/RESULTS.md, "start5").
  minifyWhitespace: true,
  minifySyntax: true,
  logLevel: 'warning',
});
const outputs = Object.entries(result.metafile.outputs).filter(([file]) => file.endsWith('.js'));
// Which sources each output file holds (test/lifecycle/bundle-loads.test.ts reads it: what a start
// loads is told by the output files it reads).
const inputs = Object.fromEntries(outputs.map(([file, o]) => [relative('dist', file), Object.keys(o.inputs)]));
await writeFile('dist/bundle-inputs.json', `${JSON.stringify(inputs, null, 1)}\n`);
process.stderr.write(`bundled dist/: ${outputs.map(([file, o]) => `${file} (${Math.round(o.bytes / 1024)} KiB)`).join(', ')}\n`);
