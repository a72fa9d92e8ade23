import { StandaloneValidator } from '@fastify/ajv-compiler';
import { SerializerSelector } from '@fastify/fast-json-stringify-compiler';
import { build } from 'esbuild';
import fastJsonStringify from 'fast-json-stringify';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { buildAdminApp } from '../src/admin/app.js';
import {
  evaluateModule,
  PREBUILT_FOLDER,
  PREBUILT_INDEX,
  prebuiltKey,
  type CompileSource,
  type PrebuiltFinder,
  type PrebuiltIndex,
  type PrebuiltKind,
} from '../src/admin/prebuilt-code.js';
import { openStore } from '../src/catalog/store/index.js';
import { Metrics } from '../src/telemetry/metrics.js';
import { AdaptiveWeights } from '../src/weights/adaptive-weights.js';
import { XdsCache } from '../src/xds/cache.js';
import { ProxyRegistry } from '../src/xds/proxy-status.js';

/**
 * Part of `npm run build`: every admin route's validator and answer serializer, generated ahead
 * by fastify's own compilers in their standalone modes (@fastify/ajv-compiler; fast-json-stringify
 * with its `anyOf` checks inlined as Ajv standalone code), and written where the compiled
 * prebuilt-code.ts looks for them (dist/admin/prebuilt/), so a running fulcrum evaluates code
 * instead of compiling schemas on its event loop (see that module). Generated, never committed.
 *
 * The routes are those of the admin app itself, built with every optional part (store, weights,
 * reports) and asked for everything at once. The runtime modules the code requires (Ajv's helpers,
 * the formats, fast-json-stringify's serializer) are bundled into one file per kind, from the
 * compiler's own copies, so loading the code reads nothing from node_modules.
 */

/** Where each kind's compiler resolves what its code requires (its own Ajv: the top-level ajv is another major). */
const RESOLVE_FROM: Record<PrebuiltKind, string> = { validator: '@fastify/ajv-compiler/package.json', serializer: 'fast-json-stringify/package.json' };
const packageFolder = (kind: PrebuiltKind): string => dirname(createRequire(import.meta.url).resolve(RESOLVE_FROM[kind]));

type Recorded = Map<string, { readonly kind: PrebuiltKind; readonly code: string }>;

/** A finder that compiles everything in standalone mode and keeps the code by key. */
export class PrebuiltRecorder implements PrebuiltFinder {
  readonly eager = true;
  readonly recorded: Recorded = new Map();
  private code: string | undefined;
  private readonly validators = StandaloneValidator({ readMode: false, storeFunction: (_route, code) => (this.code = code) });

  find(source: CompileSource): unknown {
    return source.kind === 'validator' ? this.validator(source) : this.serializer(source);
  }

  private validator(source: CompileSource): unknown {
    this.code = undefined;
    const route = source.route as Parameters<ReturnType<typeof this.validators>>[0];
    const customOptions = { ...(source.options as Record<string, unknown>) };
    const validate = this.validators(source.externalSchemas as Parameters<typeof this.validators>[0], { customOptions })(route);
    if (this.code !== undefined) this.recorded.set(prebuiltKey(source), { kind: 'validator', code: this.code });
    return validate;
  }

  /** fast-json-stringify as fastify's SerializerSelector calls it (externals as `schema`), in standalone mode. */
  private serializer(source: CompileSource): unknown {
    const options = { ...(source.options as object), schema: source.externalSchemas } as Parameters<typeof fastJsonStringify>[1];
    const code = fastJsonStringify(source.route.schema as never, { ...options, mode: 'standalone', inlineValidators: true } as never) as unknown as string;
    this.recorded.set(prebuiltKey(source), { kind: 'serializer', code });
    return SerializerSelector()(source.externalSchemas as never, source.options as never)(source.route as never);
  }
}

/** Everything the admin app asks its compilers for, recorded by building it (on a throwaway SQLite store). */
export async function recordAdmin(): Promise<Recorded> {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-prebuilt-'));
  const store = openStore(dir);
  const recorder = new PrebuiltRecorder();
  const app = buildAdminApp({
    registry: new ProxyRegistry(),
    cache: new XdsCache(),
    metrics: new Metrics({ processMetrics: false }),
    ready: () => ({ ready: true, reasons: [] }),
    store,
    weights: new AdaptiveWeights(),
    reports: () => ({ accepted: 0, rejected: [] }),
    prebuilt: recorder,
  });
  try {
    await app.ready();
  } finally {
    await app.close();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return recorder.recorded;
}

/** The modules standalone code requires (`require("ajv/dist/runtime/equal")`…). */
export const requiredModules = (codes: Iterable<string>): string[] =>
  [...new Set([...codes].flatMap((code) => [...code.matchAll(/\brequire\((["'])([^"']+)\1\)/g)].map((m) => m[2] ?? '')))].sort();

/** One self-contained CommonJS file exporting those modules by id, bundled from `kind`'s compiler's own copies. */
export async function bundleRuntime(kind: PrebuiltKind, ids: readonly string[]): Promise<string> {
  const contents = `module.exports = {${ids.map((id) => `${JSON.stringify(id)}: require(${JSON.stringify(id)})`).join(',')}};`;
  const out = await build({
    stdin: { contents, resolveDir: packageFolder(kind), loader: 'js' },
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

/** Writes the code and its runtimes to `folder`, the index last; answers how many of each kind. */
export async function writePrebuilt(folder: string): Promise<Record<PrebuiltKind, number>> {
  const recorded = await recordAdmin();
  const kinds: PrebuiltKind[] = ['validator', 'serializer'];
  rmSync(folder, { recursive: true, force: true });
  mkdirSync(folder, { recursive: true });
  const runtimes = {} as Record<PrebuiltKind, string>;
  const counts = { validator: 0, serializer: 0 };
  for (const kind of kinds) {
    const codes = [...recorded].filter(([, r]) => r.kind === kind);
    const runtime = await bundleRuntime(kind, requiredModules(codes.map(([, r]) => r.code)));
    runtimes[kind] = `${kind}-runtime.cjs`;
    writeFileSync(join(folder, runtimes[kind]), runtime);
    // Proven here, not at the first request: every piece loads against its bundled runtime.
    const modules = evaluateModule(runtime, () => undefined) as Record<string, unknown>;
    for (const [key, { code }] of codes) {
      if (typeof evaluateModule(code, (id) => modules[id]) !== 'function') throw new Error(`prebuilt ${kind} ${key} does not load`);
      writeFileSync(join(folder, `${key}.cjs`), code);
      counts[kind] += 1;
    }
  }
  const index: PrebuiltIndex = { entries: Object.fromEntries([...recorded].map(([key, r]) => [key, r.kind])), runtimes };
  writeFileSync(join(folder, PREBUILT_INDEX), `${JSON.stringify(index)}\n`);
  return counts;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const folder = process.argv[2] ?? fileURLToPath(new URL(`../dist/admin/${PREBUILT_FOLDER}/`, import.meta.url));
  const counts = await writePrebuilt(folder);
  process.stdout.write(`wrote ${counts.validator} validators and ${counts.serializer} serializers to ${folder}\n`);
}
