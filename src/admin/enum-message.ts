import type { FastifyError } from 'fastify';

/**
 * A value outside an enum gets one message listing the allowed values, as the config file's parser
 * gives, so an API client learns what it may send. The schemas' enums are `enum` keywords
 * (StringEnum): Ajv says "must be equal to one of the allowed values" and puts the values in
 * `params.allowedValues`.
 */
export function enumMessage(err: FastifyError): string | undefined {
  const first = err.validation?.[0];
  if (first?.keyword !== 'enum') return undefined;
  const values = (first.params as { allowedValues?: unknown }).allowedValues;
  const allowed = Array.isArray(values) ? values.filter((v): v is string => typeof v === 'string') : [];
  if (allowed.length < 2) return undefined;
  return `${err.validationContext ?? 'request'}${first.instancePath} must be one of ${allowed.join(', ')}`;
}
