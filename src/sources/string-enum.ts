import { Kind, Type, TypeRegistry, type TUnsafe } from '@sinclair/typebox';
import { ValueErrorType, type ValueError } from '@sinclair/typebox/value';

/**
 * A string enum as JSON Schema's `{ type: 'string', enum: [...] }`, with the static type the union
 * of its values. Not TypeBox's union of literals (`anyOf` of `const`s): Ajv generates ~20 % more
 * code for that, fast-json-stringify must ask Ajv which branch a value takes (so every answer
 * schema holding one carried an Ajv compile of the whole schema), and OpenAPI 3.0 has no `const`.
 *
 * TypeBox checks values itself (the config file, a Kubernetes annotation's weighting block): the
 * schema carries its own kind, registered here once, whose check is the enum's.
 */

const KIND = 'StringEnum';

interface StringEnumSchema {
  readonly enum: readonly string[];
}

if (!TypeRegistry.Has(KIND)) TypeRegistry.Set<StringEnumSchema>(KIND, (schema, value) => typeof value === 'string' && schema.enum.includes(value));

export const StringEnum = <const T extends readonly string[]>(values: T, options: { description?: string } = {}): TUnsafe<T[number]> =>
  Type.Unsafe<T[number]>({ [Kind]: KIND, type: 'string', enum: [...values], ...options });

/** "must be one of a, b, c" for a value a StringEnum refused (TypeBox's own message names the kind). */
export function enumProblem(error: ValueError): string | undefined {
  if (error.type !== ValueErrorType.Kind || error.schema[Kind] !== KIND) return undefined;
  return `must be one of ${(error.schema as unknown as StringEnumSchema).enum.join(', ')}`;
}
