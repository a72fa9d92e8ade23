import type { FastifyError } from 'fastify';

/** Ajv's error objects as fastify hands them over (its FastifySchemaValidationError). */
type ValidationError = NonNullable<FastifyError['validation']>[number];

/** Keywords that only say a value is not of a union's branch, rather than what is wrong with it. */
const BRANCH_MISSES = new Set(['type', 'const', 'anyOf', 'oneOf', 'enum']);

/**
 * One message for a value that matched no branch of a union (`anyOf`: a setpoint is "mean" or a
 * fraction, a merge patch's field is a value or null), where Ajv lists every branch's failure
 * ("must be equal to constant, must be number, must match a schema in anyOf, must be null...")
 * and never says which constant. A failure inside the branch of the value's own type (a number
 * above its maximum) is said alone; a value of no branch's type gets the alternatives, constants
 * by value ('must be "mean", number or null').
 */
export function unionMessage(err: FastifyError): string | undefined {
  const errors = err.validation ?? [];
  const last = errors[errors.length - 1];
  if (last?.keyword !== 'anyOf' || errors.length < 2) return undefined;
  const where = (e: ValidationError): string => `${err.validationContext ?? 'request'}${e.instancePath}`;
  const inside = errors.filter((e) => !BRANCH_MISSES.has(e.keyword));
  if (inside.length > 0) return [...new Set(inside.map((e) => `${where(e)} ${e.message ?? 'is invalid'}`))].join('; ');
  const here = errors.filter((e) => e.instancePath === last.instancePath);
  const constants = here.filter((e) => e.keyword === 'const').map((e) => (e.params as { allowedValue?: unknown }).allowedValue);
  const constantTypes = new Set<string>(constants.map((v) => (v === null ? 'null' : typeof v)));
  const types = here
    .filter((e) => e.keyword === 'type')
    .flatMap((e) => String((e.params as { type?: unknown }).type).split(','))
    .filter((t) => !constantTypes.has(t));
  const alternatives = [...new Set([...constants.map((v) => JSON.stringify(v)), ...types])];
  if (alternatives.length === 0) return undefined;
  const listed = alternatives.length === 1 ? alternatives[0] : `${alternatives.slice(0, -1).join(', ')} or ${alternatives[alternatives.length - 1]}`;
  return `${where(last)} must be ${listed as string}`;
}
