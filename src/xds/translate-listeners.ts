import type { Cluster, HashPolicy, Listener, Route } from '../catalog/types.js';
import { anyOf } from './envoy-api.js';
import { duration } from './proto-values.js';

/** Catalog listeners → Envoy `Listener` (HTTP connection manager over RDS) and `RouteConfiguration`. */

const HCM = 'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const ROUTER = 'envoy.extensions.filters.http.router.v3.Router';

function connectionManager(l: Listener): { type_url: string; value: Uint8Array } {
  return anyOf(HCM, {
    stat_prefix: l.name.replace(/[^A-Za-z0-9_]/g, '_'),
    codec_type: 'AUTO',
    // The route table comes from RDS on the same ADS stream, so routes change without re-creating the listener.
    rds: { route_config_name: l.name, config_source: { ads: {}, resource_api_version: 'V3' } },
    http_filters: [{ name: 'envoy.filters.http.router', typed_config: anyOf(ROUTER, {}) }],
  });
}

export function listenerResource(l: Listener): Record<string, unknown> {
  if (l.kind === 'api') return { name: l.name, api_listener: { api_listener: connectionManager(l) } };
  return {
    name: l.name,
    address: { socket_address: { address: l.address, port_value: l.port } },
    filter_chains: [{ filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: connectionManager(l) }] }],
  };
}

/** Per cluster name, the retry_policy of routes to it (see translate-protection.ts). */
export type RetryPolicies = ReadonlyMap<string, Record<string, unknown>>;

/** Per cluster name, the hash policy of routes to it that name none (Cluster.routeHashPolicy). */
export type RouteHashPolicies = ReadonlyMap<string, HashPolicy>;

/** The routed clusters' own hash policies (`auto` session affinity), by name. */
export function routeHashPolicies(clusters: readonly Cluster[]): Map<string, HashPolicy> {
  return new Map(clusters.flatMap((c) => (c.routeHashPolicy ? [[c.name, c.routeHashPolicy] as const] : [])));
}

function hashPolicyEntry(p: HashPolicy): Record<string, unknown> {
  if ('header' in p) return { header: { header_name: p.header } };
  return { cookie: { name: p.cookie.name, ...(p.cookie.ttlSeconds !== undefined ? { ttl: { seconds: p.cookie.ttlSeconds } } : {}) } };
}

/**
 * A route's timeout. Proxyless gRPC ignores RouteAction.timeout: it takes a call's deadline from
 * max_stream_duration (gRFC A31; grpc-go and grpc-js-xds alike), so routes of an api_listener,
 * which only gRPC clients read, carry the timeout there as well (0 = none, as in Envoy). Socket
 * listeners keep Envoy's timeout alone: max_stream_duration would also bound Envoy's streams.
 */
function timeoutFields(timeoutMs: number, forGrpc: boolean): Record<string, unknown> {
  const timeout = duration(timeoutMs);
  return forGrpc ? { timeout, max_stream_duration: { max_stream_duration: timeout } } : { timeout };
}

function routeAction(r: Route, forGrpc: boolean, retries?: RetryPolicies, hashPolicies?: RouteHashPolicies): Record<string, unknown> {
  const action: Record<string, unknown> = { cluster: r.cluster };
  // The route's own hash policy wins over its cluster's.
  const hashPolicy = r.hashPolicy ?? hashPolicies?.get(r.cluster);
  if (hashPolicy) action.hash_policy = [hashPolicyEntry(hashPolicy)];
  if (r.timeoutMs !== undefined) Object.assign(action, timeoutFields(r.timeoutMs, forGrpc));
  const retry = retries?.get(r.cluster);
  if (retry) action.retry_policy = retry;
  return action;
}

/** Routes are grouped into one virtual host per domain, keeping the operator's order (first match wins). */
export function routeConfigurationResource(l: Listener, retries?: RetryPolicies, hashPolicies?: RouteHashPolicies): Record<string, unknown> {
  const hosts = new Map<string, Route[]>();
  for (const r of l.routes) {
    const list = hosts.get(r.domain) ?? [];
    list.push(r);
    hosts.set(r.domain, list);
  }
  return {
    name: l.name,
    virtual_hosts: [...hosts.entries()].map(([domain, routes], i) => ({
      name: domain === '*' ? 'any' : `vh${i}-${domain}`,
      domains: [domain],
      routes: routes.map((r) => ({ match: { prefix: r.prefix }, route: routeAction(r, l.kind === 'api', retries, hashPolicies) })),
    })),
  };
}
