import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { CatalogStore } from '../../catalog/store/index.js';
import { auditView, jsonBytes, summarize, type AuditView } from '../audit-view.js';
import { runToEnd } from '../../balancing/steps.js';
import { runInTurns } from '../../runtime/next-turn.js';
import { StringEnum, Timestamp } from '../schemas.js';
import { errorOf, securedRoute } from './schema-parts.js';
import { notFound, type StoreRoutesOptions } from './store-access.js';

/**
 * /v1/audit: every change to desired state, newest first, in the API's own shapes (audit-view.ts),
 * paged by id and bounded in bytes: a page stops at `limit` entries or `maxBytes` of JSON,
 * whichever comes first, and an entry over ENTRY_BYTES is summarised (GET /v1/audit/{id} has it
 * in full). The store is read in chunks and trims large entries itself, so a page never decodes
 * endpoint lists it does not show, nor more of the log than it returns plus one chunk. The route
 * reads a chunk per turn of the event loop: the first page of a process (cold code, a large heap
 * after 100k endpoints) held one task for 420 ms of CPU at 100k endpoints (bench/admin-100k.ts),
 * and every other request, xDS ones too, waited behind it. Entries never change once written and
 * a page goes by id, so the chunks read at different turns make the page one read at once would.
 */

/** An entry larger than this (as JSON) is summarised on a page. */
export const ENTRY_BYTES = 64 * 1024;
const DEFAULT_PAGE_BYTES = 1024 * 1024;
/** Entries read (and turned into views) per step: at most ~10 × 64 KiB of JSON between two turns. */
const CHUNK = 10;

const AuditQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100, description: 'At most this many entries per page (newest first)' })),
    before: Type.Optional(Type.Integer({ minimum: 1, description: 'Only entries older than this id (the previous page\'s nextBefore)' })),
    maxBytes: Type.Optional(
      Type.Integer({
        minimum: 1024,
        maximum: 16 * 1024 * 1024,
        default: DEFAULT_PAGE_BYTES,
        description: 'At most about this many bytes of entries per page (at least one entry is always returned); default 1 MiB',
      }),
    ),
  },
  { additionalProperties: false },
);

const EndpointCounts = Type.Object({
  before: Type.Integer({ description: 'Endpoints before the change' }),
  after: Type.Integer({ description: 'Endpoints after it' }),
});

const Summary = Type.Object(
  {
    bytes: Type.Integer({ description: 'Size of the full entry as JSON' }),
    href: Type.String({ description: 'Where the full entry is: /v1/audit/{id}' }),
    endpoints: Type.Optional(EndpointCounts),
  },
  {
    description:
      `Present when the entry is larger than ${ENTRY_BYTES} bytes: before and after then hold a cluster's settings without its endpoints (or are absent), ` +
      'the counts say how many endpoints it had before and after, and href serves the entry in full',
  },
);

const resource = (which: string) =>
  Type.Optional(
    Type.Unknown({
      description:
        `The resource ${which} the change, as the API returns it (a cluster as GET /v1/clusters/{name}, an endpoint as in its cluster's endpoint list, ` +
        `a listener as GET /v1/listeners/{name}); null ${which === 'before' ? 'on create' : 'on delete'}; absent when summarised too far`,
    }),
  );

const AuditEntry = Type.Object(
  {
    id: Type.Integer(),
    at: Timestamp,
    actor: Type.String({
      description: 'Who: token:<name> (an admin API token), config-file, kubernetes, api (no tokens configured), ... (older entries may show <role>:<hex>)',
    }),
    action: StringEnum(['create', 'replace', 'patch', 'delete', 'drain', 'disable', 'enable', 'set-state'] as const, {
      description: 'create; replace (PUT, a config-file reload); patch (PATCH: a JSON merge patch); delete; drain, disable, enable for an endpoint\'s operator state',
    }),
    kind: StringEnum(['cluster', 'endpoint', 'listener', 'node-group', 'override'] as const),
    name: Type.String({ description: 'Endpoints are named <cluster>/<address>:<port>' }),
    cluster: Type.Optional(Type.String({ description: 'For an endpoint: its cluster' })),
    endpoint: Type.Optional(Type.String({ description: 'For an endpoint: its address:port' })),
    revision: Type.Integer(),
    changed: Type.Array(Type.String(), {
      description: 'On replace, patch, drain, disable, enable: the top-level fields whose values changed (revision and updatedAt left out); on a summarised entry, endpoints only when their number changed',
    }),
    before: resource('before'),
    after: resource('after'),
    summarized: Type.Optional(Summary),
  },
  { title: 'AuditEntry' },
);

const AuditPage = Type.Object({
  entries: Type.Array(AuditEntry),
  nextBefore: Type.Optional(Type.Integer({ description: 'Pass as before= for the next (older) page; absent on the last page' })),
});

const AuditParams = Type.Object({ id: Type.Integer({ minimum: 1 }) }, { additionalProperties: false });

export interface AuditPageOut {
  readonly entries: AuditView[];
  readonly nextBefore?: number;
}

/** Newest first from `before`: up to `limit` entries and `maxBytes` of JSON (at least one entry). */
export function auditPage(store: CatalogStore, limit: number, maxBytes: number, before?: number): AuditPageOut {
  return runToEnd(auditPageSteps(store, limit, maxBytes, before));
}

/** `auditPage` in steps: yields between two chunks of the store's log (not before the first). */
export function* auditPageSteps(store: CatalogStore, limit: number, maxBytes: number, before?: number): Generator<void, AuditPageOut, void> {
  const entries: AuditView[] = [];
  let bytes = 1; // the entries as a JSON array: brackets and commas included
  let cursor = before;
  for (let first = true; ; first = false) {
    if (!first) yield;
    const want = Math.min(CHUNK, limit - entries.length);
    const chunk = store.audit(want, cursor, { trimOver: ENTRY_BYTES });
    for (const e of chunk) {
      const view = summarize(auditView(e), ENTRY_BYTES);
      const size = jsonBytes(view) + 1;
      if (entries.length > 0 && bytes + size > maxBytes) return { entries, nextBefore: cursor ?? e.id };
      entries.push(view);
      bytes += size;
      cursor = e.id;
    }
    if (entries.length >= limit) return { entries, ...(cursor !== undefined && cursor > 1 ? { nextBefore: cursor } : {}) };
    if (chunk.length < want) return { entries };
  }
}

export const auditRoutes: FastifyPluginAsyncTypebox<Pick<StoreRoutesOptions, 'store'>> = async (app, { store }) => {
  app.get(
    '/v1/audit',
    {
      schema: securedRoute('audit', 'Every change to desired state, newest first, with the resource before and after in the API\'s shapes; pages bounded by limit and maxBytes', {
        querystring: AuditQuery,
        response: { 200: AuditPage },
      }),
    },
    async (request) => runInTurns(auditPageSteps(store, request.query.limit ?? 100, request.query.maxBytes ?? DEFAULT_PAGE_BYTES, request.query.before)),
  );

  app.get(
    '/v1/audit/:id',
    {
      schema: securedRoute('audit', 'One change in full (a page summarises entries larger than 64 KiB)', {
        params: AuditParams,
        response: { 200: AuditEntry, 404: errorOf('No audit entry with this id (never written, or pruned) (code NOT_FOUND)') },
      }),
    },
    async (request) => {
      const { id } = request.params;
      const [entry] = store.audit(1, id + 1);
      if (entry?.id !== id) notFound(`audit entry ${id}`);
      return auditView(entry);
    },
  );
};
