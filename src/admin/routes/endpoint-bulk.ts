import { nextTurn } from '../../runtime/next-turn.js';
import { Type, type Static } from '@sinclair/typebox';
import { SpellingIndex, spelledTwice } from '../../catalog/address-spelling.js';
import { endpointKey } from '../../catalog/endpoint-key.js';
import { ApiError } from '../resources.js';
import type { EndpointRecord, EndpointSpec } from '../../catalog/store/index.js';
import { ClusterEndpointIn } from '../api-schemas.js';
import { withEtag } from '../preconditions.js';
import { PARSE_SLICE, parseEndpointsSliced } from '../sliced-parse.js';
import { StringEnum } from '../schemas.js';
import { NameParams, securedRoute, WRITE_ERRORS } from './schema-parts.js';
import { apiWriteOptions, requireCluster, type AdminInstance, type StoreRoutesOptions } from './store-access.js';

/**
 * PUT /v1/clusters/{name}/endpoints: many endpoints of an API-owned cluster in one request, one
 * transaction and one audit record (the cluster's update). `replace` makes the listed set the
 * cluster's endpoints; `upsert` adds or replaces the listed ones and keeps the others. Its body
 * limit is above the API's 1 MiB (a cluster PUT fits ~20k endpoints), and the entries are
 * validated in slices that yield to the event loop, so a big body does not hold up other
 * requests (xDS included) while it is checked.
 */

/** 100k endpoints with localities are ~10 MB of JSON. */
export const BULK_BODY_LIMIT_BYTES = 16 * 1024 * 1024;
export const BULK_MAX_ENDPOINTS = 100_000;

const BulkMode = StringEnum(['replace', 'upsert'] as const, {
  description: 'replace (default): the listed endpoints become the cluster\'s endpoints; upsert: add or replace the listed ones, keep the others',
});

const EndpointBulkIn = Type.Object(
  {
    mode: Type.Optional(BulkMode),
    endpoints: Type.Array(ClusterEndpointIn, { maxItems: BULK_MAX_ENDPOINTS, description: 'Config-file endpoint entries, address and port required, each (address, port) once' }),
  },
  { additionalProperties: false, title: 'EndpointBulkInput' },
);
type EndpointBulkIn = Static<typeof EndpointBulkIn>;

const EndpointBulkResult = Type.Object(
  {
    cluster: Type.String(),
    mode: BulkMode,
    revision: Type.Integer({ description: 'The cluster\'s revision after the write (unchanged when nothing changed)' }),
    count: Type.Integer({ description: 'The cluster\'s endpoints after the write' }),
    added: Type.Integer(),
    updated: Type.Integer(),
    removed: Type.Integer(),
    unchanged: Type.Integer(),
  },
  { title: 'EndpointBulkResult' },
);
type EndpointBulkResult = Static<typeof EndpointBulkResult>;

export function endpointBulkRoute(app: AdminInstance, { store, actorOf }: StoreRoutesOptions): void {
  app.put(
    '/v1/clusters/:name/endpoints',
    {
      bodyLimit: BULK_BODY_LIMIT_BYTES,
      schema: securedRoute('clusters', `Replace or upsert many endpoints of an API-owned cluster at once (up to ${BULK_MAX_ENDPOINTS}, one transaction, one audit record)`, {
        params: NameParams,
        body: EndpointBulkIn,
        response: { 200: EndpointBulkResult, ...WRITE_ERRORS },
      }),
    },
    async (request, reply) => {
      const { name } = request.params;
      const target = (rec: { owner: EndpointRecord['owner']; revision: number }) =>
        ({ kind: 'cluster' as const, name, owner: rec.owner, revision: rec.revision, what: `cluster ${JSON.stringify(name)}` });
      // Ownership and preconditions before the (long) validation; checked again at the write.
      const checked = requireCluster(store, name);
      const options = apiWriteOptions(request, actorOf, target(checked));
      const listed = await parseEndpointsSliced(request.body.endpoints);
      // The cluster must not have changed while the body was validated: its revision then is the precondition.
      const rec = requireCluster(store, name);
      const merged = await mergeEndpoints(rec.endpoints, listed, request.body.mode ?? 'replace');
      const { endpoints: _e, owner: _o, revision: _r, updatedAt: _u, ...spec } = rec;
      const { revision } = await store.putCluster({ ...spec, endpoints: merged.endpoints }, { ...options, ifMatch: options.ifMatch ?? checked.revision });
      const body: EndpointBulkResult = { cluster: name, mode: request.body.mode ?? 'replace', revision, count: merged.endpoints.length, ...merged.counts };
      return withEtag(reply, revision, 200, body);
    },
  );
}

interface Merged {
  readonly endpoints: EndpointSpec[];
  readonly counts: { added: number; updated: number; removed: number; unchanged: number };
}

/**
 * The cluster's endpoint set after the write, and how it differs from `existing`; a turn of the
 * event loop every PARSE_SLICE entries (20k in one go held a task for ~90 ms, GC included).
 */
async function mergeEndpoints(existing: readonly EndpointRecord[], listed: readonly EndpointSpec[], mode: 'replace' | 'upsert'): Promise<Merged> {
  const old = new Map<string, EndpointRecord>();
  for (const [i, e] of existing.entries()) {
    if (i > 0 && i % PARSE_SLICE === 0) await nextTurn();
    old.set(endpointKey(e), e);
  }
  const counts = { added: 0, updated: 0, removed: 0, unchanged: 0 };
  const listedKeys = new Set<string>();
  for (const [i, e] of listed.entries()) {
    if (i % PARSE_SLICE === 0) await nextTurn();
    const key = endpointKey(e);
    listedKeys.add(key);
    const before = old.get(key);
    if (!before) counts.added++;
    else if (sameEndpoint(before, e)) counts.unchanged++;
    else counts.updated++;
  }
  const kept: EndpointSpec[] = [];
  for (const [key, e] of old) {
    if (listedKeys.has(key)) continue;
    if (mode === 'replace') counts.removed++;
    else kept.push({ address: e.address, port: e.port, weight: e.weight, priority: e.priority, locality: e.locality, health: e.health });
  }
  assertNoOtherSpelling(kept, listed);
  return { endpoints: [...kept, ...listed], counts };
}

/**
 * 409 when an upsert lists an address the cluster keeps under another spelling (`0::1` beside
 * `::1`): one host to Envoy, one weight lost. The listed ones were checked among themselves by the
 * parser; the write is conditional on the cluster's revision, so what is kept is what commits.
 */
function assertNoOtherSpelling(kept: readonly EndpointSpec[], listed: readonly EndpointSpec[]): void {
  // Only IPv6 addresses have several spellings: an IPv4 fleet finds the index empty at once.
  const index = new SpellingIndex(listed.map((entry, i) => ({ address: entry.address, port: entry.port, i })));
  for (const e of kept) {
    const twin = index.twinOf(e);
    if (twin === undefined) continue;
    throw new ApiError(409, `endpoints[${twin.i}]: the cluster holds ${twin.address}:${twin.port} as ${e.address}:${e.port} (${spelledTwice(twin.address, e.address)})`, `/body/endpoints/${twin.i}`, 'ADDRESS_IN_USE');
  }
}

function sameEndpoint(a: EndpointRecord, b: EndpointSpec): boolean {
  return (
    a.weight === b.weight &&
    a.priority === b.priority &&
    a.health === b.health &&
    (b.state === undefined || a.state === b.state) &&
    a.locality.region === b.locality.region &&
    a.locality.zone === b.locality.zone &&
    a.locality.subZone === b.locality.subZone
  );
}
