import type { FastifyError } from 'fastify';

/**
 * A value outside an enum gets one message listing the allowed values, as the config file's parser
 * gives, so an API client learns what it may send. The schemas' enums are `enum` keywords (Ajv:
 * "must be equal to one of the allowed values", the values in `params.allowedValues`); a union of
 * string constants (an `anyOf` of `const`s, as TypeBox's literal unions are) is still understood:
 * Ajv reports each branch it tried ("must be equal to constant").
 */
export function enumMessage(err: FastifyError): string | undefined {
  const errors = err.validation ?? [];
  const first = errors[0];
  const allowed = first?.keyword === 'enum' ? enumValues(first.params) : first?.keyword === 'const' ? constValues(errors, first.instancePath) : [];
  if (!first || allowed.length < 2) return undefined;
  return `${err.validationContext ?? 'request'}${first.instancePath} must be one of ${allowed.join(', ')}`;
}

type ValidationErrors = NonNullable<FastifyError['validation']>;

const strings = (values: readonly unknown[]): string[] => values.filter((v): v is string => typeof v === 'string');

function enumValues(params: unknown): string[] {
  const values = (params as { allowedValues?: unknown }).allowedValues;
  return Array.isArray(values) ? strings(values) : [];
}

function constValues(errors: ValidationErrors, instancePath: string): string[] {
  return strings(errors.filter((e) => e.keyword === 'const' && e.instancePath === instancePath).map((e) => (e.params as { allowedValue?: unknown }).allowedValue));
}
