import { nextTurn } from '../runtime/next-turn.js';
import { comparableKey, spelledTwice } from '../catalog/address-spelling.js';
import { endpointKey } from '../catalog/endpoint-key.js';
import type { ClusterInput, EndpointSpec } from '../catalog/store/index.js';
import type { ClusterEndpointIn, ClusterIn } from './api-schemas.js';
import { ApiError, parseClusterBody, parseEndpointEntries } from './resources.js';
import { ConfigFileSchema } from '../sources/config-schema.js';

/**
 * Long endpoint lists through the config file's parser in slices, a turn of the event loop
 * between two: a 20k-endpoint cluster PUT parsed whole held one task for 50–150 ms (GC included)
 * and every other request, xDS ones too, waited behind it (bench/admin-100k.ts, issue 13).
 */

/** Entries parsed per turn of the event loop (~5 ms on a loaded machine). */
export const PARSE_SLICE = 1_000;

/** The config file's bound on a cluster's endpoints (a longer list is parsed whole, to fail as it does). */
const MAX_ENDPOINTS = ConfigFileSchema.properties.clusters.items.properties.endpoints.maxItems ?? Infinity;

/**
 * A bulk body's entries, a slice per turn; a problem names the entry's index in the whole body,
 * a repeated (address, port) both indexes.
 */
export async function parseEndpointsSliced(entries: readonly ClusterEndpointIn[]): Promise<EndpointSpec[]> {
  const out: EndpointSpec[] = [];
  // Keyed as Envoy compares addresses: two spellings of one IPv6 address are one host to it.
  const seen = new Map<string, number>();
  for (let offset = 0; offset < entries.length; offset += PARSE_SLICE) {
    if (offset > 0) await nextTurn();
    const slice = parseEndpointEntries(entries.slice(offset, offset + PARSE_SLICE), offset);
    for (const [i, e] of slice.entries()) {
      const key = comparableKey(e);
      const first = seen.get(key);
      if (first !== undefined) throw duplicateEntry(e, offset + i, out[first] as EndpointSpec, first);
      seen.set(key, offset + i);
      out.push(e);
    }
  }
  return out;
}

function duplicateEntry(e: EndpointSpec, index: number, first: EndpointSpec, firstIndex: number): ApiError {
  const what = e.address === first.address ? `duplicate endpoint ${endpointKey(e)}` : `duplicate endpoint: ${spelledTwice(e.address, first.address)} (port ${e.port})`;
  return new ApiError(400, `endpoints[${index}]: ${what} (also endpoints[${firstIndex}])`, `/body/endpoints/${index}`);
}

/**
 * parseClusterBody, with a long endpoint list parsed in slices: the settings alone, then the
 * entries (the parser's rules for an endpoint do not depend on its cluster's settings). A body
 * that fails anywhere is parsed again whole, so its 400 is exactly parseClusterBody's (its first
 * problem and the count of the others); so is an `auto` cluster's, whose choice of policy counts
 * the endpoints.
 */
export async function parseClusterBodySliced(body: ClusterIn, name: string): Promise<ClusterInput> {
  const { endpoints, ...settings } = body;
  const sliced = endpoints !== undefined && endpoints.length > PARSE_SLICE && endpoints.length <= MAX_ENDPOINTS;
  if (!sliced || settings.weighting?.policy === 'auto') return parseClusterBody(body, name);
  try {
    const cluster = parseClusterBody(settings, name);
    return { ...cluster, endpoints: await parseEndpointsSliced(endpoints) };
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    return parseClusterBody(body, name);
  }
}
