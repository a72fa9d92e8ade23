/**
 * Rewrites the few JSON Schema (draft 7) keywords that OpenAPI 3.0's schema dialect spells
 * differently, in the generated document only (fastify keeps validating with the originals):
 * `exclusiveMinimum: n` becomes `minimum: n, exclusiveMinimum: true` (likewise for the maximum).
 * @fastify/swagger already turns `const` into `enum` and `type: 'null'` into `nullable`.
 */
export function toOpenApi30<T>(doc: T): T {
  return walk(doc) as T;
}

function walk(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(walk);
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) out[key] = walk(v);
  for (const [exclusive, inclusive] of [
    ['exclusiveMinimum', 'minimum'],
    ['exclusiveMaximum', 'maximum'],
  ] as const) {
    const bound = out[exclusive];
    if (typeof bound === 'number') {
      out[inclusive] = bound;
      out[exclusive] = true;
    }
  }
  return out;
}
