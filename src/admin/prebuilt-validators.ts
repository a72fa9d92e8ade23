import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The admin routes' validators, generated when fulcrum is built (scripts/generate-validators.ts),
 * found here by what they were compiled from.
 *
 * Compiling a route's schema with Ajv is one task on the event loop: 100–250 ms for the cluster
 * PUT/PATCH bodies on a loaded machine (Ajv writes 164–295 KiB of code for them), during which
 * every request, xDS included, waits (bench/RESULTS.md "write9"). A worker thread took that off
 * the loop but left ~3 MiB of native memory at rest ("warm9"). `npm run build` instead runs
 * fastify's own compiler in its standalone mode (the same Ajv, formats and options) over every
 * route and writes each validator's code to dist/admin/prebuilt-validators/; here a route's
 * validator is that file, evaluated: a few milliseconds, with no Ajv instance behind it.
 *
 * A validator is found by a hash of its schema and Ajv options, never by route: a schema changed
 * since the build (or built from a configuration) is simply not found and is compiled at run time,
 * as is everything when the folder is absent (the TypeScript sources run through tsx).
 */

/** The folder, next to this module's compiled file (dist/admin/), that the build writes. */
export const PREBUILT_VALIDATORS = 'prebuilt-validators';
/** Its list of validators (written last: build-if-stale.mjs looks at it). */
export const PREBUILT_INDEX = 'index.json';

/** A validator as Ajv makes it: a function with the last call's `errors` on it. */
export type AjvValidate = ((data: unknown) => boolean) & { errors?: unknown };

/** What fastify's compiler is asked for: a route part's schema. */
export interface ValidatorRoute {
  readonly schema: unknown;
  readonly method?: unknown;
  readonly url?: string;
  readonly httpPart?: string;
}

/** What a validator is compiled from: the external schemas and custom Ajv options of its pool, and the route. */
export interface ValidatorSource {
  readonly externalSchemas: unknown;
  readonly customOptions: Readonly<Record<string, unknown>>;
  readonly route: ValidatorRoute;
}

/** Hands validators.ts a route's validator made elsewhere; undefined: compile it here. */
export interface ValidatorFinder {
  find(source: ValidatorSource): AjvValidate | undefined;
  /** Make every validator when the app is ready, not on first use (the build's recorder, which must see them all). */
  readonly eager?: boolean;
}

/** What the build writes to PREBUILT_INDEX. */
export interface PrebuiltIndex {
  /** Each validator's key; its code is `<key>.cjs`. */
  readonly validators: readonly string[];
  /** The file that holds the Ajv runtime helpers the validators require (`module.exports = { [id]: module }`). */
  readonly runtime: string;
}

/** The key a validator is filed under: its pool's external schemas and options, and its schema (JSON). */
export function validatorKey(source: ValidatorSource): string {
  const text = JSON.stringify([source.externalSchemas, source.customOptions, source.route.schema]);
  return createHash('sha256').update(text).digest('hex').slice(0, 32);
}

/** CommonJS code (Ajv's standalone output, or the bundled runtime) evaluated with `require` answered from `modules`. */
export function evaluateModule(code: string, require: (id: string) => unknown): unknown {
  const module = { exports: {} as unknown };
  // The code is the build's own output for our own schemas (never client input), read from dist/.
  new Function('module', 'exports', 'require', code)(module, module.exports, require);
  return module.exports;
}

const defaultFolder = (): string => fileURLToPath(new URL(`./${PREBUILT_VALIDATORS}/`, import.meta.url));

/** The validators a build wrote to `folder`, read one file at a time as routes first need them. */
export class PrebuiltValidators implements ValidatorFinder {
  /** undefined: the index is not read yet; null: there is none (or it is unreadable). */
  private index: { readonly keys: ReadonlySet<string>; readonly runtime: string } | null | undefined;
  private modules: Readonly<Record<string, unknown>> | undefined;
  /** Validators found (`prebuilt`), and asked for but not in the build (`missing`): tests and the warm-up's log read them. */
  readonly counts = { prebuilt: 0, missing: 0 };

  constructor(private readonly folder: string = defaultFolder()) {}

  find(source: ValidatorSource): AjvValidate | undefined {
    const index = this.readIndex();
    if (!index) return undefined;
    const key = validatorKey(source);
    const validate = index.keys.has(key) ? this.load(key, index.runtime) : undefined;
    if (validate) this.counts.prebuilt += 1;
    else this.counts.missing += 1;
    return validate;
  }

  private load(key: string, runtime: string): AjvValidate | undefined {
    try {
      const modules = (this.modules ??= evaluateModule(readFileSync(join(this.folder, runtime), 'utf8'), noRequire) as Record<string, unknown>);
      const validate = evaluateModule(readFileSync(join(this.folder, `${key}.cjs`), 'utf8'), (id) => fromRuntime(modules, id));
      return typeof validate === 'function' ? (validate as AjvValidate) : undefined;
    } catch {
      // A file gone or damaged since the build: the route's validator is compiled instead.
      return undefined;
    }
  }

  private readIndex(): { readonly keys: ReadonlySet<string>; readonly runtime: string } | null {
    if (this.index !== undefined) return this.index;
    try {
      const read = JSON.parse(readFileSync(join(this.folder, PREBUILT_INDEX), 'utf8')) as Partial<PrebuiltIndex>;
      const ok = Array.isArray(read.validators) && typeof read.runtime === 'string';
      this.index = ok ? { keys: new Set(read.validators), runtime: read.runtime as string } : null;
    } catch {
      this.index = null;
    }
    return this.index;
  }
}

function fromRuntime(modules: Readonly<Record<string, unknown>>, id: string): unknown {
  if (!Object.hasOwn(modules, id)) throw new Error(`prebuilt validator requires ${id}, which the build's runtime file lacks`);
  return modules[id];
}

const noRequire = (id: string): never => {
  throw new Error(`the prebuilt validators' runtime file requires ${id}: it should be self-contained`);
};
