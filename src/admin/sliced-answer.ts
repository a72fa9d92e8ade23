import { jsonInSlices, type SlicedJson } from '../runtime/json-in-slices.js';
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
