/**
 * The validator of a query string that takes no parameters (`NoQuery`: an object with no
 * properties and no others allowed), without Ajv. Most routes, the probes among them, have that
 * schema; compiling it was what the first /readyz after start paid for Ajv (its instance and
 * JSON Schema's meta-schema, ~50–100 ms: bench/RESULTS.md, "start5"). It answers as Ajv does
 * under fastify's options (first error only): the same verdict and the same `errors`, so the
 * 400 a request gets is unchanged (test/admin/empty-query.test.ts compares the two).
 */

export interface EmptyObjectError {
  readonly instancePath: '';
  readonly schemaPath: string;
  readonly keyword: string;
  readonly params: Record<string, string>;
  readonly message: string;
}

export interface EmptyObjectValidator {
  (data: unknown): boolean;
  errors: EmptyObjectError[] | null;
}

/** Whether `schema` is exactly `{ type: 'object', properties: {}, additionalProperties: false }` (other annotations aside). */
export function isEmptyClosedObject(schema: unknown): boolean {
  if (typeof schema !== 'object' || schema === null) return false;
  const s = schema as Record<string, unknown>;
  const keys = Object.keys(s).filter((k) => !ANNOTATIONS.has(k));
  const noProperties = s.properties === undefined || (typeof s.properties === 'object' && s.properties !== null && Object.keys(s.properties).length === 0);
  return s.type === 'object' && s.additionalProperties === false && noProperties && keys.every((k) => ['type', 'properties', 'additionalProperties'].includes(k));
}

/** Keywords that never change a verdict. */
const ANNOTATIONS = new Set(['title', 'description', '$comment', 'examples']);

export function emptyObjectValidator(): EmptyObjectValidator {
  const validate = ((data: unknown): boolean => {
    validate.errors = errorsOf(data);
    return validate.errors === null;
  }) as EmptyObjectValidator;
  validate.errors = null;
  return validate;
}

function errorsOf(data: unknown): EmptyObjectError[] | null {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    return [{ instancePath: '', schemaPath: '#/type', keyword: 'type', params: { type: 'object' }, message: 'must be object' }];
  }
  const extra = Object.keys(data)[0];
  if (extra === undefined) return null;
  return [{ instancePath: '', schemaPath: '#/additionalProperties', keyword: 'additionalProperties', params: { additionalProperty: extra }, message: 'must NOT have additional properties' }];
}
