import { AjvCompiler } from '@fastify/ajv-compiler';
import { emptyObjectValidator, isEmptyClosedObject } from './empty-query.js';
import { longArrayOf, slicedBodyValidator } from './sliced-validation.js';

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

export const buildValidator =
  (): BuildValidator =>
  (externalSchemas) => {
    // Ajv's instances are made on the first schema that needs one: a query string taking no
    // parameters (most routes, the probes among them) is checked without Ajv (empty-query.ts).
    const pool = AjvCompiler();
    let coercing: ReturnType<BuildValidator> | undefined;
    let exact: ReturnType<BuildValidator> | undefined;
    return (route) => {
      if (route.httpPart === 'body') {
        const compile = (exact ??= pool(externalSchemas, { customOptions: { ...OPTIONS, coerceTypes: false } }));
        // A body with a long array (20k endpoints) is checked in slices (sliced-validation.ts).
        const long = longArrayOf(route.schema);
        if (!long) return compile(route);
        let item: Validate | undefined;
        return slicedBodyValidator(compile(route), long, () => (item ??= compile({ ...route, schema: long.items }))) as Validate;
      }
      // fastify reads a validator's verdict and its `errors`, which this one has as Ajv's do.
      if (isEmptyClosedObject(route.schema)) return emptyObjectValidator() as unknown as Validate;
      return (coercing ??= pool(externalSchemas, { customOptions: OPTIONS }))(route);
    };
  };
