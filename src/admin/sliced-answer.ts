import { Readable } from 'node:stream';
import { insideEmpty, jsonInSlices, jsonPartsInSlices, type SlicedJson } from '../runtime/json-in-slices.js';
import { nextTurn } from '../runtime/next-turn.js';
import type { TSchema } from '@sinclair/typebox';
import type { FastifyReply } from 'fastify';

/**
 * A write's answer that carries a long array (a cluster PUT of 20k endpoints answers with all of
 * them, ~1.5 MB of JSON) serialized in slices, a turn of the event loop between two, instead of
 * in one go: fast-json-stringify took 90–110 ms of one task for 20k endpoints, GC included, and
 * every other request (xDS ones too) waited behind it (bench/admin-100k.ts, issue 13). The bytes
 * are those the route's schema gives the whole body: the array's items go through the compiled
 * serializer of the array's item schema, the rest through the route's own serializer with the
 * array empty.
 */

/** Items above which an answer's array is serialized in slices. */
export const SLICED_ANSWER_OVER = 1_000;

/** Items serialized per turn of the event loop (~3–5 ms of 20k endpoints' ~100 ms). */
export const ANSWER_SLICE = 1_000;

/** Response schemas of big writes' answers (a cluster view), with their long array's key: the Warmer compiles their serializers first. */
const answeredInSlices = new WeakMap<object, string>();

/** Marks `schema` as a big write's answer (sendSliced answers with it), whose `key` array may be long. */
export function answersInSlices(schema: TSchema, key: string): void {
  answeredInSlices.set(schema, key);
}

export const isAnsweredInSlices = (schema: unknown): boolean => typeof schema === 'object' && schema !== null && answeredInSlices.has(schema);

/** The item schema sendSliced compiles for a big write's answer on first use (the build makes its serializer ahead). */
export function slicedAnswerItem(schema: unknown): TSchema | undefined {
  const key = typeof schema === 'object' && schema !== null ? answeredInSlices.get(schema) : undefined;
  return key === undefined ? undefined : itemSchema(schema as TSchema, key);
}

/** The schema of `schema`'s `key` array's items, if it is an object schema with such an array. */
function itemSchema(schema: TSchema, key: string): TSchema | undefined {
  const prop: unknown = (schema as { properties?: Record<string, unknown> }).properties?.[key];
  const items: unknown = prop !== null && typeof prop === 'object' ? (prop as { items?: unknown }).items : undefined;
  return items !== null && typeof items === 'object' ? (items as TSchema) : undefined;
}

/**
 * Sends `body` with `status`, its `key` array's items each made into their answer's entry by
 * `entry` (in the slices too: at 20k endpoints, mapping them all first held the loop ~10 ms and
 * made 40k objects in one go): whole when the array is short (or the schema is not one this can
 * slice), else serialized in slices with the route's own serializer compiler.
 */
export async function sendSliced(reply: FastifyReply, status: number, schema: TSchema, body: unknown, key: string, entry: (item: never) => unknown): Promise<FastifyReply> {
  // `schema`: the route's response schema for `status` (its array's item schema is compiled here once per route).
  // Before the head is serialized: fastify picks the route's serializer by the reply's status.
  reply.code(status);
  const record = body !== null && typeof body === 'object' ? (body as Record<string, unknown>) : undefined;
  const items = record?.[key];
  const toEntry = entry as (item: unknown) => unknown;
  const item = itemSchema(schema, key);
  if (!record || !Array.isArray(items)) return reply.send(body);
  const whole = (): FastifyReply => reply.send({ ...record, [key]: items.map((i) => toEntry(i)) });
  if (items.length <= SLICED_ANSWER_OVER || !item) return whole();
  const serializeItem = reply.compileSerializationSchema(item) as (i: unknown) => string;
  const json: SlicedJson = {
    // The route's own serializer for this status (compiled once, and warmed for write routes: lazy-compilers.ts).
    head: (b) => String(reply.serialize(b)),
    item: (i) => serializeItem(toEntry(i)),
    turn: nextTurn,
  };
  const text = await jsonInSlices(json, record, key, items, ANSWER_SLICE);
  if (text === undefined) return whole();
  // A string with a JSON content type is sent as it is (fastify serializes only objects).
  return reply.type('application/json; charset=utf-8').send(text);
}

/** A list's records and how one is viewed, whole or with its long array in slices. */
export interface SlicedList<Rec> {
  /** The list's array key in the answer (e.g. `clusters`, beside `count`). */
  readonly key: string;
  readonly records: readonly Rec[];
  /** The record's view (its long array's entries made). */
  readonly view: (rec: Rec) => unknown;
  /** The record's long array: its key in the view, its items, the view with the items as they are, and each item's entry. */
  readonly long: {
    readonly key: string;
    readonly items: (rec: Rec) => readonly unknown[];
    readonly view: (rec: Rec) => unknown;
    readonly entry: (item: never) => unknown;
  };
}

/**
 * Sends `{ count, [key]: views }` (a GET of every cluster: 17.7 MB of JSON at 120,000 endpoints,
 * which held every other request, xDS ones too, for the whole serialization and then for the
 * write of one string that size): whole when the records hold at most SLICED_ANSWER_OVER
 * long-array items in all, else streamed: the records serialized one by one with the list's item
 * serializer (a record with a long array of its own in slices, as a write's answer is), a turn of
 * the event loop after about every ANSWER_SLICE items, each piece written as it is made (the
 * records are already read: nothing the stream sends can change). The same bytes as the whole
 * body through the route's schema.
 */
export function sendListSliced<Rec>(reply: FastifyReply, schema: TSchema, list: SlicedList<Rec>): FastifyReply {
  reply.code(200);
  const { records, long } = list;
  const whole = (): FastifyReply => reply.send({ count: records.length, [list.key]: records.map(list.view) });
  // HEAD: fastify would read a stream to its end only to drop it; the whole body gives Content-Length.
  if (reply.request.method === 'HEAD') return whole();
  let total = 0;
  for (const rec of records) total += long.items(rec).length;
  const viewSchema = itemSchema(schema, list.key);
  const entrySchema = viewSchema && itemSchema(viewSchema, long.key);
  if (total <= SLICED_ANSWER_OVER || !viewSchema || !entrySchema) return whole();
  const head = String(reply.serialize({ count: records.length, [list.key]: [] }));
  const open = insideEmpty(head, list.key, '[]');
  if (open === undefined) return whole();
  const serializeView = reply.compileSerializationSchema(viewSchema) as (v: unknown) => string;
  const serializeEntry = reply.compileSerializationSchema(entrySchema) as (i: unknown) => string;
  const toEntry = long.entry as (item: unknown) => unknown;
  async function* pieces(): AsyncGenerator<string> {
    // Small records are joined into chunks of about CHUNK_CHARS (one write each, not one per record).
    let chunk = head.slice(0, open);
    let sinceTurn = 0;
    for (let r = 0; r < records.length; r++) {
      const rec = records[r] as Rec;
      const items = long.items(rec);
      // A record counts one item more than its array: a long run of empty ones still takes turns.
      if (sinceTurn > 0 && sinceTurn + items.length + 1 > ANSWER_SLICE) {
        if (chunk) yield chunk;
        chunk = '';
        await nextTurn();
        sinceTurn = 0;
      }
      const comma = r === 0 ? '' : ',';
      if (items.length <= ANSWER_SLICE) {
        chunk += comma + serializeView(list.view(rec));
        sinceTurn += items.length + 1;
        if (chunk.length >= CHUNK_CHARS) {
          yield chunk;
          chunk = '';
        }
        continue;
      }
      if (chunk) yield chunk;
      chunk = '';
      const json: SlicedJson = { head: (b) => serializeView(b), item: (i) => serializeEntry(toEntry(i)), turn: nextTurn };
      const parts = await jsonPartsInSlices(json, long.view(rec) as object, long.key, items, ANSWER_SLICE);
      if (parts === undefined) yield comma + serializeView(list.view(rec));
      else {
        yield comma + parts.head.slice(0, parts.at);
        for (let g = 0; g < parts.groups.length; g++) yield (g === 0 ? '' : ',') + (parts.groups[g] as string);
        yield parts.head.slice(parts.at);
      }
      await nextTurn();
      sinceTurn = 0;
    }
    yield chunk + head.slice(open);
  }
  // Once streaming, a failure (a serializer's bug) can only cut the answer short: the status is sent.
  return reply.type('application/json; charset=utf-8').send(Readable.from(pieces(), { objectMode: false }));
}

/** Characters of small records joined into one piece of a streamed list. */
const CHUNK_CHARS = 64 * 1024;
