import type { Static, TSchema } from '@sinclair/typebox';
import type { MaybePromise, Meta, WriteOptions, WriteResult } from '../../catalog/store/index.js';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { etag, patchRetrying } from '../preconditions.js';
import { answersInSlices, sendListSliced, sendSliced } from '../sliced-answer.js';
import { nextTurn } from '../../runtime/next-turn.js';
import { ApiError, mergePatch } from '../resources.js';
import { VALIDATION_FAILED } from '../errors.js';
import { Conditional, ConditionalPut, Deleted, NameParams, NOT_FOUND, securedRoute, WRITE_ERRORS } from './schema-parts.js';
import { apiWriteOptions, notFound, type AdminInstance, type StoreRoutesOptions, type WriteTarget } from './store-access.js';

/** What the store keeps of a named resource: its name, owner and revision. */
type NamedRecord = Meta & { readonly name: string };

/**
 * A named desired-state resource the API lists, reads, replaces and deletes whole, owned by one
 * source (clusters, listeners). Only what differs between them is stated here; the HTTP side
 * (404, ownership and preconditions, 201 with Location on create, ETags) is `namedResourceRoutes`.
 */
export interface NamedResource<Rec extends NamedRecord, In extends TSchema, Input> {
  readonly kind: 'cluster' | 'listener';
  /** The URL segment under /v1, the list's property and the OpenAPI tag. */
  readonly plural: 'clusters' | 'listeners';
  readonly schemas: { readonly view: TSchema; readonly list: TSchema; readonly input: In; readonly patch: TSchema };
  readonly summaries: { readonly list: string; readonly get: string; readonly put: string; readonly patch: string; readonly delete: string };
  list(): readonly Rec[];
  /** list() read in slices with `turn` between, the same snapshot (CatalogStore.listClustersInTurns); absent: list() is cheap. */
  listInTurns?(turn: () => Promise<void>): Promise<readonly Rec[]>;
  get(name: string): Rec | undefined;
  view(rec: Rec): unknown;
  /** A validated PUT body → the store's input (400 naming the field, 409 on a clash); a long one in slices. */
  parse(body: Static<In>, name: string): MaybePromise<Input>;
  put(input: Input, options: WriteOptions): MaybePromise<WriteResult>;
  /** 409 while something still needs the resource; checked after ownership and preconditions. */
  assertDeletable?(name: string): void;
  delete(name: string, options: WriteOptions): MaybePromise<WriteResult>;
  /**
   * The view's array that can be long (a cluster's endpoints): a write's answer makes and
   * serializes its entries in slices (sliced-answer.ts), from `view`'s body with the records in it.
   */
  readonly longArray?: LongArray<Rec>;
}

export interface LongArray<Rec> {
  readonly key: string;
  /** The record's own items (what goes in the array). */
  readonly items: (rec: Rec) => readonly unknown[];
  /** The view with the record's own items in the array (what `entry` makes each into is `view`'s). */
  readonly view: (rec: Rec) => unknown;
  readonly entry: (item: never) => unknown;
}

/** A write's answer: the resource as now stored, its long array (if any) serialized in slices. */
async function answer<Rec extends NamedRecord, In extends TSchema, Input>(
  r: NamedResource<Rec, In, Input>,
  reply: FastifyReply,
  revision: number,
  status: number,
  rec: Rec,
): Promise<FastifyReply> {
  reply.header('etag', etag(revision));
  const long = r.longArray;
  return long === undefined ? reply.code(status).send(r.view(rec)) : sendSliced(reply, status, r.schemas.view, long.view(rec), long.key, long.entry);
}

/** The named resource, or the 404 that names it. */
function found<Rec extends NamedRecord, In extends TSchema, Input>(r: NamedResource<Rec, In, Input>, name: string): Rec {
  return r.get(name) ?? notFound(`${r.kind} ${JSON.stringify(name)}`);
}

/** What an API write to the resource targets: ownership and preconditions are checked against it. */
function writeTarget(kind: NamedResource<NamedRecord, TSchema, unknown>['kind'], name: string, rec: NamedRecord | undefined): WriteTarget {
  return { kind, name, owner: rec?.owner, revision: rec?.revision, what: `${kind} "${name}"` };
}

/**
 * One PATCH read-modify-write, conditional on the revision read (the client's own If-Match, if
 * sent): a cluster is written whole, endpoints included, so a write in between (an endpoint
 * drained while a long body was parsed) must make this one fail and re-read, not be overwritten.
 */
async function patchOnce<Rec extends NamedRecord, In extends TSchema, Input>(
  r: NamedResource<Rec, In, Input>,
  name: string,
  request: FastifyRequest<{ Body: unknown }>,
  actorOf: StoreRoutesOptions['actorOf'],
): Promise<WriteResult> {
  const rec = found(r, name);
  const options = apiWriteOptions(request, actorOf, writeTarget(r.kind, name, rec));
  const merged = mergePatch(r.view(rec), request.body) as Static<In>;
  requiredKept(r.schemas.input, merged as object);
  return await r.put(await r.parse(merged, name), options);
}

/**
 * The patch schema types every field it sets, but a null removes one (RFC 7396): a field the PUT
 * body requires (a listener's routes) then reached the parse missing, and a 500 came back.
 */
function requiredKept(input: TSchema, merged: object): void {
  const required = (input as { required?: readonly string[] }).required ?? [];
  const missing = required.find((key) => !(key in merged));
  if (missing !== undefined) throw new ApiError(400, `body/${missing} may not be removed (null): it is required`, `/body/${missing}`, VALIDATION_FAILED);
}

export function namedResourceRoutes<Rec extends NamedRecord, In extends TSchema, Input>(
  app: AdminInstance,
  r: NamedResource<Rec, In, Input>,
  actorOf: StoreRoutesOptions['actorOf'],
): void {
  const url = `/v1/${r.plural}`;
  if (r.longArray !== undefined) answersInSlices(r.schemas.view, r.longArray.key);
  const getOr404 = (name: string): Rec => found(r, name);
  const target = (name: string, rec: Rec | undefined) => writeTarget(r.kind, name, rec);

  // Both GETs serialize a long answer in slices, as the writes' answers are (sliced-answer.ts).
  app.get(url, { schema: securedRoute(r.plural, r.summaries.list, { response: { 200: r.schemas.list } }) }, async (_request, reply) => {
    const records = r.listInTurns ? await r.listInTurns(nextTurn) : r.list();
    const long = r.longArray;
    if (long === undefined) return { count: records.length, [r.plural]: records.map(r.view) };
    return sendListSliced(reply, r.schemas.list, { key: r.plural, records, view: r.view, long });
  });

  app.get(
    `${url}/:name`,
    { schema: securedRoute(r.plural, r.summaries.get, { params: NameParams, response: { 200: r.schemas.view, ...NOT_FOUND } }) },
    async (request, reply) => {
      const rec = getOr404(request.params.name);
      return answer(r, reply, rec.revision, 200, rec);
    },
  );

  app.put(
    `${url}/:name`,
    {
      schema: securedRoute(r.plural, r.summaries.put, {
        params: NameParams,
        headers: ConditionalPut,
        body: r.schemas.input,
        response: { 200: r.schemas.view, 201: r.schemas.view, ...WRITE_ERRORS },
      }),
    },
    async (request, reply) => {
      const { name } = request.params;
      const existing = r.get(name);
      const options = apiWriteOptions(request, actorOf, target(name, existing));
      const { revision } = await r.put(await r.parse(request.body, name), options);
      if (!existing) reply.header('location', `${url}/${encodeURIComponent(name)}`);
      return answer(r, reply, revision, existing ? 200 : 201, getOr404(name));
    },
  );

  // PATCH: the resource as GET shows it, merge-patched, then written as a PUT of the result would be.
  app.patch(
    `${url}/:name`,
    {
      schema: securedRoute(r.plural, r.summaries.patch, {
        params: NameParams,
        headers: Conditional,
        body: r.schemas.patch,
        response: { 200: r.schemas.view, ...WRITE_ERRORS },
      }),
    },
    async (request, reply) => {
      const { name } = request.params;
      const { revision } = await patchRetrying(request.headers, `${r.kind} "${name}"`, () => patchOnce(r, name, request, actorOf));
      return answer(r, reply, revision, 200, getOr404(name));
    },
  );

  app.delete(
    `${url}/:name`,
    { schema: securedRoute(r.plural, r.summaries.delete, { params: NameParams, headers: Conditional, response: { 200: Deleted, ...WRITE_ERRORS } }) },
    async (request) => {
      const { name } = request.params;
      const options = apiWriteOptions(request, actorOf, target(name, getOr404(name)));
      r.assertDeletable?.(name);
      const { revision } = await r.delete(name, options);
      return { deleted: name, revision };
    },
  );
}
