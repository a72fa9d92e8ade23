/**
 * The response schema fast-json-stringify is given: the route's own, except that an `anyOf` whose
 * branches are scalars of different JSON types (a policy's `setpoint`: the string "mean" or a
 * number) becomes a list of types. For an `anyOf` fast-json-stringify asks Ajv which branch a
 * value takes, and Ajv compiles the whole response schema for that: for a cluster's answer one
 * task of 70–200 ms in the warm-up and Ajv's code at rest (bench/RESULTS.md, "union10"). A type
 * list is serialized by `typeof` alone, with the same bytes for every value the schema allows:
 * scalars of different types cannot be confused, and the branches' other keywords (enum, bounds)
 * only validate, which fast-json-stringify never does for a plain schema either.
 *
 * The route keeps its schema for everything else (OpenAPI 3.0 has no type lists: the document
 * says `anyOf`, as before). Other unions (of objects, or of a scalar and an object) are left as
 * they are.
 */

type Schema = Record<string, unknown>;

/** JSON types a branch may have, each serialized by its own typeof test; integer and number share one (a type list could not tell them apart). */
const SCALAR_GROUP: Readonly<Record<string, string>> = { string: 'string', number: 'number', integer: 'number', boolean: 'boolean', null: 'null' };

/**
 * Keywords that only validate (fast-json-stringify ignores them) or annotate. Not `format` (a
 * date-time serializes a Date) nor `default` (fast-json-stringify writes it for a missing value).
 */
const VALIDATION_ONLY = new Set(['type', 'enum', 'const', 'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'multipleOf', 'minLength', 'maxLength', 'pattern', 'title', 'description']);

const isSchema = (v: unknown): v is Schema => v !== null && typeof v === 'object' && !Array.isArray(v);

/** The types of `branches` when each is a plain scalar schema of its own type group; undefined otherwise. */
function scalarTypes(branches: unknown): string[] | undefined {
  if (!Array.isArray(branches) || branches.length < 2) return undefined;
  const types: string[] = [];
  const groups = new Set<string>();
  for (const b of branches) {
    const type = isSchema(b) ? b.type : undefined;
    const group = typeof type === 'string' ? SCALAR_GROUP[type] : undefined;
    if (!isSchema(b) || group === undefined || groups.has(group) || !Object.keys(b).every((k) => VALIDATION_ONLY.has(k))) return undefined;
    groups.add(group);
    types.push(type as string);
  }
  return types;
}

/** `schema` with each scalar `anyOf` as a type list; the same object when it has none (most schemas). */
export function serializerSchema<T>(schema: T): T {
  return rewrite(schema) as T;
}

function rewrite(node: unknown): unknown {
  if (Array.isArray(node)) {
    const items = node.map(rewrite);
    return items.some((v, i) => v !== node[i]) ? items : node;
  }
  if (!isSchema(node)) return node;
  const types = node.type === undefined ? scalarTypes(node.anyOf) : undefined;
  if (types) {
    const { anyOf: _branches, ...rest } = node;
    return { ...rest, type: types };
  }
  let copy: Schema | undefined;
  for (const [key, value] of Object.entries(node)) {
    const next = rewrite(value);
    if (next !== value) (copy ??= { ...node })[key] = next;
  }
  return copy ?? node;
}
