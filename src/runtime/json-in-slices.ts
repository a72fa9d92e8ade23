/**
 * JSON of an object that holds one long array (a cluster's endpoints), made in slices with a
 * turn of the event loop between two, instead of in one go that holds every other request (xDS
 * ones too) behind it: ~40 ms for 20k endpoints (bench/admin-100k.ts, issue 13). The text is the
 * one the whole serializer gives: the head is serialized with the array empty and the items are
 * put in its place.
 */

export interface SlicedJson {
  /** The body with its array empty, as the whole serializer gives it. */
  readonly head: (body: Record<string, unknown>) => string;
  /** One item of the array, as the whole serializer gives it. */
  readonly item: (item: unknown) => string;
  /** Lets other work run between two slices. */
  readonly turn: () => Promise<void>;
}

/** A JSON text as its head (the array empty) and the array's items, serialized in groups. */
export interface JsonParts {
  readonly head: string;
  /** Where the items go in `head`: just inside the array's `[`. */
  readonly at: number;
  /** The items' JSON, comma-joined in groups of `slice`, in order. */
  readonly groups: readonly string[];
}

/**
 * `body`'s JSON as parts, its `key` array serialized `slice` items per turn; undefined when the
 * empty array's place in the head is not found exactly once (the caller then serializes whole).
 */
export async function jsonPartsInSlices(json: SlicedJson, body: object, key: string, items: readonly unknown[], slice: number): Promise<JsonParts | undefined> {
  const head = json.head({ ...body, [key]: [] });
  const at = insideEmpty(head, key, '[]');
  if (at === undefined) return undefined;
  const groups: string[] = [];
  for (let i = 0; i < items.length; i += slice) {
    if (i > 0) await json.turn();
    groups.push(items.slice(i, i + slice).map(json.item).join(','));
  }
  return { head, at, groups };
}

/**
 * Where the members of `key`'s empty array or object (`empty`: `[]` or `{}`) go in `text`: the
 * index just inside its opening bracket, if `"key":[]` occurs exactly once (else a caller
 * serializes whole: a value could hold the same text).
 */
export function insideEmpty(text: string, key: string, empty: '[]' | '{}'): number | undefined {
  const marker = `${JSON.stringify(key)}:${empty}`;
  const at = text.indexOf(marker);
  if (at < 0 || text.indexOf(marker, at + 1) >= 0) return undefined;
  return at + marker.length - 1;
}

/** `body` as JSON, its `key` array serialized `slice` items per turn (see jsonPartsInSlices). */
export async function jsonInSlices(json: SlicedJson, body: object, key: string, items: readonly unknown[], slice: number): Promise<string | undefined> {
  const parts = await jsonPartsInSlices(json, body, key, items, slice);
  return parts && `${parts.head.slice(0, parts.at)}${parts.groups.join(',')}${parts.head.slice(parts.at)}`;
}
