/**
 * GET /v1/config_dump of a large snapshot, decoded and written a few resources at a time.
 *
 * The whole dump decodes every resource the node group is sent and serializes them in one task:
 * at 120,000 endpoints 19 MB of JSON, ~300 ms during which every xDS stream and admin request
 * waited (bench/admin-reads.ts). A snapshot never changes once made, so its resources can be
 * decoded across turns of the event loop and each piece written as it is made. The bytes are the
 * whole serializer's: the dump's head and each type's entry through the route's serializers with
 * their arrays empty, each resource through the resource item's.
 */
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import type { FastifyReply } from 'fastify';
import { insideEmpty } from '../runtime/json-in-slices.js';
import { nextTurn } from '../runtime/next-turn.js';
import { ConfigDump, DumpedType } from './schemas.js';
import { wholeConfigDump, type ConfigDumpParts } from './views.js';

/** Resources above which a dump is streamed (below, it is answered whole). */
export const STREAMED_DUMP_OVER = 200;
/** Work between two turns of the event loop. */
const SLICE_MS = 4;
/** The types' order in the answer: the schema's (fast-json-stringify writes properties so). */
const TYPE_ORDER = Object.keys(ConfigDump.properties.types.properties);

export function sendConfigDump(reply: FastifyReply, parts: ConfigDumpParts): FastifyReply {
  reply.code(200);
  const whole = (): FastifyReply => reply.send(wholeConfigDump(parts));
  const count = parts.types.reduce((n, t) => n + t.resources.length, 0);
  // HEAD: a stream would be read to its end only to be dropped; the whole body gives Content-Length.
  if (count <= STREAMED_DUMP_OVER || reply.request.method === 'HEAD') return whole();
  const head = String(reply.serialize(parts.top));
  const typesAt = insideEmpty(head, 'types', '{}');
  const serializeType = reply.compileSerializationSchema(DumpedType) as (d: unknown) => string;
  const serializeItem = reply.compileSerializationSchema(DumpedType.properties.resources.items) as (r: unknown) => string;
  const heads = parts.types.map((t) => ({ t, text: serializeType(t.head) }));
  if (typesAt === undefined || heads.some((h) => insideEmpty(h.text, 'resources', '[]') === undefined)) return whole();
  const ordered = TYPE_ORDER.flatMap((short) => heads.filter((h) => h.t.short === short));
  async function* pieces(): AsyncGenerator<string> {
    let since = performance.now();
    yield head.slice(0, typesAt as number);
    for (let k = 0; k < ordered.length; k++) {
      const { t, text } = ordered[k] as (typeof ordered)[number];
      const at = insideEmpty(text, 'resources', '[]') as number;
      yield `${k === 0 ? '' : ','}${JSON.stringify(t.short)}:${text.slice(0, at)}`;
      for (let i = 0; i < t.resources.length; i++) {
        if (performance.now() - since >= SLICE_MS) {
          await nextTurn();
          since = performance.now();
        }
        const [name, r] = t.resources[i] as (typeof t.resources)[number];
        yield (i === 0 ? '' : ',') + serializeItem(t.item(name, r));
      }
      yield text.slice(at);
    }
    yield head.slice(typesAt as number);
  }
  // Once streaming, a failure (a decoder's or serializer's bug) can only cut the answer short.
  return reply.type('application/json; charset=utf-8').send(Readable.from(pieces()));
}

