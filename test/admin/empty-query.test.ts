import { AjvCompiler } from '@fastify/ajv-compiler';
import { describe, expect, it } from 'vitest';
import { emptyObjectValidator, isEmptyClosedObject } from '../../src/admin/empty-query.js';
import { NameParams, NoQuery } from '../../src/admin/routes/schema-parts.js';

/** Ajv as fastify's query strings get it (validators.ts: its options, coercing). */
function ajvFor(schema: unknown): (data: unknown) => { valid: boolean; errors: unknown } {
  const compile = AjvCompiler()({}, { customOptions: { removeAdditional: false, ownProperties: true } });
  const validate = compile({ schema, method: 'GET', url: '/x', httpPart: 'querystring' } as never);
  return (data) => ({ valid: validate(data) as boolean, errors: validate.errors ?? null });
}

const withKeys = (...keys: string[]) => Object.assign(Object.create(null) as object, Object.fromEntries(keys.map((k) => [k, '1'])));

describe('the query string that takes no parameters, checked without Ajv', () => {
  it('recognises NoQuery and nothing that could accept or refuse more', () => {
    expect(isEmptyClosedObject(NoQuery)).toBe(true);
    expect(isEmptyClosedObject({ type: 'object', additionalProperties: false, description: 'none' })).toBe(true);
    expect(isEmptyClosedObject(NameParams)).toBe(false);
    expect(isEmptyClosedObject({ type: 'object', properties: {} })).toBe(false);
    expect(isEmptyClosedObject({ type: 'object', properties: {}, additionalProperties: false, required: ['a'] })).toBe(false);
    expect(isEmptyClosedObject({ type: 'object', properties: {}, additionalProperties: false, minProperties: 1 })).toBe(false);
    expect(isEmptyClosedObject(undefined)).toBe(false);
  });

  it('gives the verdict and the errors Ajv gives, for every kind of input', () => {
    const ajv = ajvFor(NoQuery);
    const mine = emptyObjectValidator();
    const inputs: unknown[] = [{}, withKeys(), withKeys('a'), withKeys('b', 'a'), { __proto__: null, x: '' }, [], null, 'q', 5, { a: undefined }];
    for (const input of inputs) {
      const valid = mine(input);
      expect({ valid, errors: mine.errors }, JSON.stringify(input)).toEqual(ajv(input));
    }
  });
});
