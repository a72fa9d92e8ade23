/**
 * A request body with a long array (a cluster PUT or bulk endpoint PUT of 20k endpoints) checked
 * against its schema in slices, a turn of the event loop between two, instead of in one go: Ajv
 * over 20k entries held one task for 15–75 ms (GC included) with the JSON parse and the config
 * parser after it, and every other request, xDS ones too, waited behind it (bench/admin-100k.ts,
 * issue 13). The body is checked with the array emptied (everything but the array's entries),
 * then each entry against the array's item schema, compiled by the same Ajv with the same options.
 * Only a body that passes is decided this way: on any failure the whole body goes through the
 * route's own validator at once, so the verdict and every error (path, message, which error is
 * first) are exactly those of validating it whole.
 */
import { nextTurn } from '../runtime/next-turn.js';

/** A compiled validator as fastify calls it (Ajv's: a verdict, `errors` after a failure). */
export interface BodyValidator {
  (data: unknown): boolean | Promise<boolean>;
  errors?: unknown;
}

/** Entries above which a body's long array is checked in slices. */
export const SLICED_BODY_OVER = 1_000;

/** Entries checked per turn of the event loop (~1 ms each on a loaded machine). */
export const BODY_SLICE = 1_000;

/** The array property of a body schema that may be long, and the bounds its entries obey. */
export interface LongArray {
  readonly key: string;
  readonly items: object;
  readonly minItems: number;
  readonly maxItems: number;
}

/** Array keywords this can check itself (beside `items`); an array schema with any other is validated whole. */
const SIZE_ONLY = new Set(['type', 'items', 'minItems', 'maxItems', 'description', 'title']);

const isRecord = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** The object schema's first array property whose entries are objects and that says nothing but their bounds. */
export function longArrayOf(schema: unknown): LongArray | undefined {
  if (!isRecord(schema) || !isRecord(schema.properties)) return undefined;
  for (const [key, prop] of Object.entries(schema.properties)) {
    if (!isRecord(prop) || prop.type !== 'array' || !isRecord(prop.items)) continue;
    if (!Object.keys(prop).every((k) => SIZE_ONLY.has(k))) continue;
    const min = typeof prop.minItems === 'number' ? prop.minItems : 0;
    const max = typeof prop.maxItems === 'number' ? prop.maxItems : Infinity;
    return { key, items: prop.items, minItems: min, maxItems: max };
  }
  return undefined;
}

/**
 * `whole`, the route's body validator, with its `long` array checked in slices when it holds more
 * than SLICED_BODY_OVER entries (then the verdict is a promise, which fastify waits for).
 * `item`: the validator of one entry, compiled on first use.
 */
export function slicedBodyValidator(whole: BodyValidator, long: LongArray, item: () => BodyValidator, turn = nextTurn): BodyValidator {
  const wholly = (data: unknown): boolean => {
    const ok = whole(data) as boolean;
    validate.errors = whole.errors;
    return ok;
  };
  const inSlices = async (body: Record<string, unknown>, entries: readonly unknown[]): Promise<boolean> => {
    if (entries.length < long.minItems || entries.length > long.maxItems || !headValid(body, entries)) return wholly(body);
    const check = item();
    for (let i = 0; i < entries.length; i++) {
      if (i > 0 && i % BODY_SLICE === 0) await turn();
      if (!check(entries[i])) return wholly(body);
    }
    validate.errors = null;
    return true;
  };
  // Everything but the entries, on the body itself (defaults Ajv fills in land where they would).
  const headValid = (body: Record<string, unknown>, entries: readonly unknown[]): boolean => {
    body[long.key] = [];
    try {
      return whole(body) === true;
    } finally {
      body[long.key] = entries;
    }
  };
  const validate: BodyValidator = (data) => {
    const entries = isRecord(data) && Object.hasOwn(data, long.key) ? data[long.key] : undefined;
    if (!isRecord(data) || !Array.isArray(entries) || entries.length <= SLICED_BODY_OVER) return wholly(data);
    return inSlices(data, entries);
  };
  return validate;
}
