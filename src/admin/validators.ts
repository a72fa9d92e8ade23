import { AjvCompiler } from '@fastify/ajv-compiler';

/**
 * fastify's validator compiler (its own Ajv setup, formats included), twice: path parameters,
 * query strings and headers arrive as text, so their numbers and booleans are coerced from it
 * (`/endpoints/10.0.0.1/8080`), but a JSON body already has types, and coercing them would accept
 * what the schema forbids (`"port": "80"`, `"cpu": null` read as 0). Bodies are checked as they are.
 */
type BuildValidator = ReturnType<typeof AjvCompiler>;

// Unknown fields are errors (400 naming them), as in the config file, not silently dropped; only
// a value's own properties count (`required: ['__proto__']` is not met by every object's prototype).
const OPTIONS = { removeAdditional: false, ownProperties: true } as const;

export const buildValidator =
  (): BuildValidator =>
  (externalSchemas) => {
    const pool = AjvCompiler();
    const coercing = pool(externalSchemas, { customOptions: OPTIONS });
    const exact = pool(externalSchemas, { customOptions: { ...OPTIONS, coerceTypes: false } });
    return (route) => (route.httpPart === 'body' ? exact(route) : coercing(route));
  };
