import { AjvCompiler } from '@fastify/ajv-compiler';
import { emptyObjectValidator, isEmptyClosedObject } from './empty-query.js';
import type { CompiledRoute, PrebuiltFinder } from './prebuilt-code.js';
import { longArrayOf, slicedBodyValidator } from './sliced-validation.js';

/**
 * fastify's validator compiler (its own Ajv setup, formats included), twice: path parameters,
 * query strings and headers arrive as text, so their numbers and booleans are coerced from it
 * (`/endpoints/10.0.0.1/8080`), but a JSON body already has types, and coercing them would accept
 * what the schema forbids (`"port": "80"`, `"cpu": null` read as 0). Bodies are checked as they are.
 *
 * `prebuilt` (prebuilt-code.ts) hands over the validators `npm run build` generated, by
 * schema and options; only what it lacks is compiled here.
 */
type BuildValidator = ReturnType<typeof AjvCompiler>;
type Validate = ReturnType<ReturnType<BuildValidator>>;

// Unknown fields are errors (400 naming them), as in the config file, not silently dropped; only
// a value's own properties count (`required: ['__proto__']` is not met by every object's prototype).
const OPTIONS = { removeAdditional: false, ownProperties: true } as const;
const BODY_OPTIONS = { ...OPTIONS, coerceTypes: false } as const;

export const buildValidator =
  (prebuilt?: PrebuiltFinder): BuildValidator =>
  (externalSchemas) => {
    // Ajv's instances are made on the first schema that needs one: a query string taking no
    // parameters (most routes, the probes among them) is checked without Ajv (empty-query.ts),
    // and a prebuilt validator needs none at all.
    // The pool keeps one Ajv per options (fastify's own pooling), made on its first compile.
    const pool = AjvCompiler();
    const made = (customOptions: typeof OPTIONS | typeof BODY_OPTIONS, route: CompiledRoute): Validate => {
      const found = prebuilt?.find({ kind: 'validator', externalSchemas, options: customOptions, route });
      if (found) return found as unknown as Validate;
      return pool(externalSchemas, { customOptions })(route as Parameters<ReturnType<BuildValidator>>[0]);
    };
    return (route) => {
      if (route.httpPart === 'body') {
        // A body with a long array (20k endpoints) is checked in slices (sliced-validation.ts).
        const long = longArrayOf(route.schema);
        if (!long) return made(BODY_OPTIONS, route);
        let item: Validate | undefined;
        const entries = (): Validate => (item ??= made(BODY_OPTIONS, { ...route, schema: long.items }));
        // The build's recorder must see the entries' schema too, which a request would ask for later.
        if (prebuilt?.eager) entries();
        return slicedBodyValidator(made(BODY_OPTIONS, route), long, entries) as Validate;
      }
      // fastify reads a validator's verdict and its `errors`, which this one has as Ajv's do.
      if (isEmptyClosedObject(route.schema)) return emptyObjectValidator() as unknown as Validate;
      return made(OPTIONS, route);
    };
  };
