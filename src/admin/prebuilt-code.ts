import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The admin routes' validators (Ajv) and answer serializers (fast-json-stringify), generated when
 * fulcrum is built (scripts/generate-prebuilt.ts), found here by what they were compiled from.
 *
 * Compiling a route's schema is one task on the event loop: 100–250 ms for the cluster PUT/PATCH
 * bodies on a loaded machine (Ajv writes 164–295 KiB of code for them), and as much again for the
 * cluster answer's serializer and the Ajv check of its `anyOf` branches, during which every
 * request, xDS included, waits (bench/RESULTS.md "write9"). A worker thread took that off the loop
 * but left ~3 MiB of native memory at rest ("warm9"). `npm run build` instead runs both of
 * fastify's compilers in their standalone modes (the same Ajv, formats and options; the
 * serializers' branch checks inlined as Ajv standalone code) over every route and writes the code
 * to dist/admin/prebuilt/; here a route's validator or serializer is that file, evaluated: a few
 * milliseconds, with no compiler behind it.
 *
 * Found by a hash of the schema and options, never by route: a schema changed since the build (or
 * made from a configuration) is simply not found and is compiled at run time, as everything is when
 * the folder is absent (the TypeScript sources run through tsx).
 */

/** The folder, next to this module's compiled file (dist/admin/), that the build writes. */
export const PREBUILT_FOLDER = 'prebuilt';
/** Its list of files (written last: build-if-stale.mjs looks at it). */
export const PREBUILT_INDEX = 'index.json';

export type PrebuiltKind = 'validator' | 'serializer';

/** What fastify's compilers are asked for: a route part's (or answer's) schema. */
export interface CompiledRoute {
  readonly schema?: unknown;
  readonly method?: unknown;
  readonly url?: string;
  readonly httpPart?: string;
}

/** What a validator or serializer is compiled from: the compiler's external schemas and options, and the route. */
export interface CompileSource {
  readonly kind: PrebuiltKind;
  readonly externalSchemas: unknown;
  /** A validator's custom Ajv options; a serializer's fast-json-stringify options. */
  readonly options: unknown;
  readonly route: CompiledRoute;
}

/** Hands validators.ts and the serializers a route's code made elsewhere; undefined: compile it here. */
export interface PrebuiltFinder {
  find(source: CompileSource): unknown;
  /** Make everything when the app is ready, not on first use (the build's recorder, which must see it all). */
  readonly eager?: boolean;
}

/** What the build writes to PREBUILT_INDEX. */
export interface PrebuiltIndex {
  /** Each file's key (its code is `<key>.cjs`) and kind. */
  readonly entries: Readonly<Record<string, PrebuiltKind>>;
  /** Per kind, the file holding the runtime modules its code requires (`module.exports = { [id]: module }`). */
  readonly runtimes: Readonly<Record<PrebuiltKind, string>>;
}

/** The key a piece of code is filed under: its kind, its compiler's external schemas and options, and its schema (JSON). */
export function prebuiltKey(source: CompileSource): string {
  const text = JSON.stringify([source.kind, source.externalSchemas, source.options, source.route.schema]);
  return createHash('sha256').update(text).digest('hex').slice(0, 32);
}

/** CommonJS code (a compiler's standalone output, or a bundled runtime) evaluated with `require` answered by `require`. */
export function evaluateModule(code: string, require: (id: string) => unknown): unknown {
  const module = { exports: {} as unknown };
  // The code is the build's own output for our own schemas (never client input), read from dist/.
  new Function('module', 'exports', 'require', code)(module, module.exports, require);
  return module.exports;
}

const defaultFolder = (): string => fileURLToPath(new URL(`./${PREBUILT_FOLDER}/`, import.meta.url));

/** What the build wrote to `folder`, read one file at a time as routes first need them. */
export class PrebuiltCode implements PrebuiltFinder {
  /** undefined: the index is not read yet; null: there is none (or it is unreadable). */
  private index: PrebuiltIndex | null | undefined;
  private readonly runtimes = new Map<PrebuiltKind, Readonly<Record<string, unknown>>>();
  /** Per kind, found (`prebuilt`) and asked for but not in the build (`missing`): tests and the warm-up's log line read them. */
  readonly counts: Record<PrebuiltKind, { prebuilt: number; missing: number }> = { validator: { prebuilt: 0, missing: 0 }, serializer: { prebuilt: 0, missing: 0 } };

  constructor(private readonly folder: string = defaultFolder()) {}

  find(source: CompileSource): unknown {
    const index = this.readIndex();
    if (!index) return undefined;
    const key = prebuiltKey(source);
    const made = index.entries[key] === source.kind ? this.load(key, source.kind, index) : undefined;
    if (made) this.counts[source.kind].prebuilt += 1;
    else this.counts[source.kind].missing += 1;
    return made;
  }

  private load(key: string, kind: PrebuiltKind, index: PrebuiltIndex): unknown {
    try {
      const modules = this.runtime(kind, index);
      const made = evaluateModule(readFileSync(join(this.folder, `${key}.cjs`), 'utf8'), (id) => fromRuntime(modules, id));
      return typeof made === 'function' ? made : undefined;
    } catch {
      // A file gone or damaged since the build: compiled instead.
      return undefined;
    }
  }

  private runtime(kind: PrebuiltKind, index: PrebuiltIndex): Readonly<Record<string, unknown>> {
    let modules = this.runtimes.get(kind);
    if (!modules) {
      modules = evaluateModule(readFileSync(join(this.folder, index.runtimes[kind]), 'utf8'), noRequire) as Record<string, unknown>;
      this.runtimes.set(kind, modules);
    }
    return modules;
  }

  private readIndex(): PrebuiltIndex | null {
    if (this.index !== undefined) return this.index;
    try {
      const read = JSON.parse(readFileSync(join(this.folder, PREBUILT_INDEX), 'utf8')) as Partial<PrebuiltIndex>;
      const ok = typeof read.entries === 'object' && read.entries !== null && typeof read.runtimes === 'object' && read.runtimes !== null;
      this.index = ok ? (read as PrebuiltIndex) : null;
    } catch {
      this.index = null;
    }
    return this.index;
  }
}

function fromRuntime(modules: Readonly<Record<string, unknown>>, id: string): unknown {
  if (!Object.hasOwn(modules, id)) throw new Error(`prebuilt code requires ${id}, which the build's runtime file lacks`);
  return modules[id];
}

const noRequire = (id: string): never => {
  throw new Error(`a prebuilt runtime file requires ${id}: it should be self-contained`);
};
