import { AjvCompiler } from '@fastify/ajv-compiler';
import { emptyObjectValidator, isEmptyClosedObject } from './empty-query.js';
import { longArrayOf, slicedBodyValidator } from './sliced-validation.js';
import type { AjvWorker } from './ajv-worker.js';

/**
 * fastify's validator compiler (its own Ajv setup, formats included), twice: path parameters,
 * query strings and headers arrive as text, so their numbers and booleans are coerced from it
 * (`/endpoints/10.0.0.1/8080`), but a JSON body already has types, and coercing them would accept
 * what the schema forbids (`"port": "80"`, `"cpu": null` read as 0). Bodies are checked as they are.
 */
type BuildValidator = ReturnType<typeof AjvCompiler>;
type Validate = ReturnType<ReturnType<BuildValidator>>;

// Unknown fields are errors (400 naming them), as in the config file, not silently dropped; only
// a value's own properties count (`required: ['__proto__']` is not met by every object's prototype).
const OPTIONS = { removeAdditional: false, ownProperties: true } as const;

/** The Ajv options a route's schema is compiled with here, by pool; undefined: checked without Ajv (empty-query.ts). */
function poolOf(route: { readonly httpPart?: string; readonly schema: unknown }): { readonly key: 'exact' | 'coercing'; readonly customOptions: Record<string, unknown> } | undefined {
  if (route.httpPart === 'body') return { key: 'exact', customOptions: { ...OPTIONS, coerceTypes: false } };
  if (isEmptyClosedObject(route.schema)) return undefined;
  return { key: 'coercing', customOptions: { ...OPTIONS } };
}

type ValidatorRoute = Parameters<ReturnType<BuildValidator>>[0];

/**
 * Validators compiled off the event loop (ajv-worker.ts) ahead of their route's first use, by
 * schema object and pool. Every write route's schema is noted when its validator is made; the
 * warm-up's first `prepare` sends them all to the worker at once, biggest first, so the worker
 * compiles while the Warmer goes on (one at a time, the warm-up took twice as long, and first
 * requests met schemas not yet compiled); the compiler takes from `ready`.
 */
export class PrecompiledValidators {
  private readonly ready = new WeakMap<object, Map<string, Validate>>();
  private noted: { externalSchemas: unknown; route: ValidatorRoute; size: number }[] = [];
  private readonly sent = new WeakMap<object, Map<string, Promise<void>>>();

  constructor(private readonly worker: AjvWorker) {}

  /** A write route's validator that the warm-up will want: its source, sent on the first prepare(). */
  note(externalSchemas: unknown, route: ValidatorRoute): void {
    if (!schemaObject(route) || !poolOf(route)) return;
    this.noted.push({ externalSchemas, route, size: JSON.stringify(route.schema).length });
    // A body checked in slices also needs its entries' validator (sliced-validation.ts): made on the worker too.
    const long = route.httpPart === 'body' ? longArrayOf(route.schema) : undefined;
    if (long) this.noted.push({ externalSchemas, route: { ...route, schema: long.items } as ValidatorRoute, size: JSON.stringify(long.items).length });
  }

  /** Resolves once the route's validator was generated on the worker, or could not be (never rejects); undefined: nothing to wait for. */
  prepare(externalSchemas: unknown, route: ValidatorRoute): Promise<void> | undefined {
    for (const n of this.noted.splice(0).sort((a, b) => b.size - a.size)) this.send(n.externalSchemas, n.route);
    const schema = schemaObject(route);
    const pool = poolOf(route);
    if (!schema || !pool || this.take(schema, pool.key)) return undefined;
    return this.sent.get(schema)?.get(pool.key) ?? this.send(externalSchemas, route);
  }

  take(schema: unknown, key: string): Validate | undefined {
    return schema !== null && typeof schema === 'object' ? this.ready.get(schema)?.get(key) : undefined;
  }

  private send(externalSchemas: unknown, route: ValidatorRoute): Promise<void> | undefined {
    const schema = schemaObject(route);
    const pool = poolOf(route);
    if (!schema || !pool) return undefined;
    const bySchema = this.sent.get(schema) ?? new Map<string, Promise<void>>();
    this.sent.set(schema, bySchema);
    const known = bySchema.get(pool.key);
    if (known) return known;
    const source = { externalSchemas, customOptions: pool.customOptions, route: { schema: route.schema, method: String(route.method), url: String(route.url), httpPart: String(route.httpPart) } };
    const done = this.worker.generate(source).then((code) => {
      const validate = code === undefined ? undefined : this.worker.restore(code);
      if (!validate) return;
      const byPool = this.ready.get(schema) ?? new Map<string, Validate>();
      byPool.set(pool.key, validate as unknown as Validate);
      this.ready.set(schema, byPool);
    });
    bySchema.set(pool.key, done);
    return done;
  }
}

function schemaObject(route: ValidatorRoute): object | undefined {
  const schema = route.schema as unknown;
  return schema !== null && typeof schema === 'object' ? schema : undefined;
}

export const buildValidator =
  (precompiled?: PrecompiledValidators): BuildValidator =>
  (externalSchemas) => {
    // Ajv's instances are made on the first schema that needs one: a query string taking no
    // parameters (most routes, the probes among them) is checked without Ajv (empty-query.ts).
    const pool = AjvCompiler();
    let coercing: ReturnType<BuildValidator> | undefined;
    let exact: ReturnType<BuildValidator> | undefined;
    return (route) => {
      if (route.httpPart === 'body') {
        const compile = (exact ??= pool(externalSchemas, { customOptions: { ...OPTIONS, coerceTypes: false } }));
        const whole = (): Validate => precompiled?.take(route.schema, 'exact') ?? compile(route);
        // A body with a long array (20k endpoints) is checked in slices (sliced-validation.ts).
        const long = longArrayOf(route.schema);
        if (!long) return whole();
        let item: Validate | undefined;
        return slicedBodyValidator(whole(), long, () => (item ??= precompiled?.take(long.items, 'exact') ?? compile({ ...route, schema: long.items }))) as Validate;
      }
      // fastify reads a validator's verdict and its `errors`, which this one has as Ajv's do.
      if (isEmptyClosedObject(route.schema)) return emptyObjectValidator() as unknown as Validate;
      return precompiled?.take(route.schema, 'coercing') ?? (coercing ??= pool(externalSchemas, { customOptions: OPTIONS }))(route);
    };
  };
