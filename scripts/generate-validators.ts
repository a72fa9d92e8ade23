import { StandaloneValidator } from '@fastify/ajv-compiler';
import { build } from 'esbuild';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { buildAdminApp } from '../src/admin/app.js';
import {
  evaluateModule,
  PREBUILT_INDEX,
  PREBUILT_VALIDATORS,
  validatorKey,
  type AjvValidate,
  type PrebuiltIndex,
  type ValidatorFinder,
  type ValidatorSource,
} from '../src/admin/prebuilt-validators.js';
import { openStore } from '../src/catalog/store/index.js';
import { Metrics } from '../src/telemetry/metrics.js';
import { AdaptiveWeights } from '../src/weights/adaptive-weights.js';
import { XdsCache } from '../src/xds/cache.js';
import { ProxyRegistry } from '../src/xds/proxy-status.js';

/**
 * Part of `npm run build`: every admin route's validator, generated ahead by fastify's own
 * compiler in its standalone mode (@fastify/ajv-compiler: the same Ajv, formats and options as at
 * run time) and written where the compiled prebuilt-validators.ts looks for them
 * (dist/admin/prebuilt-validators/), so a running fulcrum evaluates code instead of compiling
 * schemas on its event loop (see that module). Generated, never committed (dist/ only).
 *
 * The routes are those of the admin app itself, built with every optional part (store, weights,
 * reports) and asked for every validator at once. The Ajv runtime helpers the validators require
 * (deep equality, string length, the formats) are bundled into one file beside them, from the
 * compiler's own copy of Ajv, so loading a validator reads nothing from node_modules.
 */

/** Where @fastify/ajv-compiler resolves its own Ajv and ajv-formats (not the top-level ajv, another major). */
const compilerFolder = (): string => dirname(createRequire(import.meta.url).resolve('@fastify/ajv-compiler/package.json'));

/** A finder that compiles each validator in standalone mode and keeps its code by key. */
export class ValidatorRecorder implements ValidatorFinder {
  readonly eager = true;
  readonly codes = new Map<string, string>();
  private code: string | undefined;
  private readonly compiler = StandaloneValidator({ readMode: false, storeFunction: (_route, code) => (this.code = code) });

  find(source: ValidatorSource): AjvValidate | undefined {
    this.code = undefined;
    const route = source.route as Parameters<ReturnType<typeof this.compiler>>[0];
    const validate = this.compiler(source.externalSchemas as Parameters<typeof this.compiler>[0], { customOptions: { ...source.customOptions } })(route);
    if (this.code !== undefined) this.codes.set(validatorKey(source), this.code);
    return validate as unknown as AjvValidate;
  }
}

/** Every validator the admin app asks for, recorded by building it (on a throwaway SQLite store). */
export async function recordAdminValidators(): Promise<Map<string, string>> {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-validators-'));
  const store = openStore(dir);
  const recorder = new ValidatorRecorder();
  const app = buildAdminApp({
    registry: new ProxyRegistry(),
    cache: new XdsCache(),
    metrics: new Metrics({ processMetrics: false }),
    ready: () => ({ ready: true, reasons: [] }),
    store,
    weights: new AdaptiveWeights(),
    reports: () => ({ accepted: 0, rejected: [] }),
    validators: recorder,
  });
  try {
    await app.ready();
  } finally {
    await app.close();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return recorder.codes;
}

/** The modules Ajv's standalone code requires (`require("ajv/dist/runtime/equal")`…). */
export const requiredModules = (codes: Iterable<string>): string[] =>
  [...new Set([...codes].flatMap((code) => [...code.matchAll(/\brequire\("([^"]+)"\)/g)].map((m) => m[1] ?? '')))].sort();

/** One self-contained CommonJS file exporting those modules by id, bundled from the compiler's own Ajv. */
export async function bundleRuntime(ids: readonly string[]): Promise<string> {
  const contents = `module.exports = {${ids.map((id) => `${JSON.stringify(id)}: require(${JSON.stringify(id)})`).join(',')}};`;
  const out = await build({
    stdin: { contents, resolveDir: compilerFolder(), loader: 'js' },
    bundle: true,
    format: 'cjs',
    platform: 'node',
    target: 'node20',
    minifyWhitespace: true,
    minifySyntax: true,
    write: false,
    logLevel: 'warning',
  });
  return out.outputFiles[0]?.text ?? '';
}

/** Writes the validators and their runtime to `folder`, the index last; answers how many. */
export async function writePrebuiltValidators(folder: string): Promise<number> {
  const codes = await recordAdminValidators();
  const runtime = 'runtime.cjs';
  const runtimeCode = await bundleRuntime(requiredModules(codes.values()));
  // Proven here, not at the first request: every validator loads against the bundled runtime.
  const modules = evaluateModule(runtimeCode, () => undefined) as Record<string, unknown>;
  rmSync(folder, { recursive: true, force: true });
  mkdirSync(folder, { recursive: true });
  writeFileSync(join(folder, runtime), runtimeCode);
  for (const [key, code] of codes) {
    if (typeof evaluateModule(code, (id) => modules[id]) !== 'function') throw new Error(`validator ${key} does not load`);
    writeFileSync(join(folder, `${key}.cjs`), code);
  }
  const index: PrebuiltIndex = { validators: [...codes.keys()].sort(), runtime };
  writeFileSync(join(folder, PREBUILT_INDEX), `${JSON.stringify(index)}\n`);
  return codes.size;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const folder = process.argv[2] ?? fileURLToPath(new URL(`../dist/admin/${PREBUILT_VALIDATORS}/`, import.meta.url));
  const count = await writePrebuiltValidators(folder);
  process.stdout.write(`wrote ${count} validators to ${folder}\n`);
}
