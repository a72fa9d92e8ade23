import type { FastifyError } from 'fastify';

/**
 * An enum in the schemas is a union of string constants; ajv reports each branch it tried
 * ("must be equal to constant"). This turns those into one message listing the allowed values,
 * as the config file's parser does, so an API client learns what it may send.
 */
export function enumMessage(err: FastifyError): string | undefined {
  const errors = err.validation ?? [];
  const first = errors[0];
  if (first?.keyword !== 'const') return undefined;
  const allowed = errors
    .filter((e) => e.keyword === 'const' && e.instancePath === first.instancePath)
    .map((e) => (e.params as { allowedValue?: unknown }).allowedValue)
    .filter((v): v is string => typeof v === 'string');
  if (allowed.length < 2) return undefined;
  return `${err.validationContext ?? 'request'}${first.instancePath} must be one of ${allowed.join(', ')}`;
}
