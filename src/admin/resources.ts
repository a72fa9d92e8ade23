import type { ClusterInput, ClusterRecord, ClusterSpec, EndpointRecord, EndpointSpec, ListenerRecord, OperatorState } from '../catalog/store/index.js';
import { LB_POLICIES, SLOW_START_POLICIES, type Cluster, type Listener, type WeightingPolicy } from '../catalog/types.js';
import { ConfigError, parseConfigValue } from '../sources/config-file.js';
import type { ClusterEndpointIn, ClusterIn, ClusterView, EndpointEntry, EndpointEntryIn, ListenerIn, ListenerView, PolicyView } from './api-schemas.js';

/**
 * Pure conversions between the store's records and the API's JSON (the config file's shapes),
 * and validation of request bodies by the config file's own parser, so the API accepts exactly
 * what the file accepts (IP addresses, blend fractions, auto traits, duplicate endpoints...) with
 * the same messages. Problems are reported as 400s with a JSON pointer into the request body.
 */

/** An error the admin API answers with as it is: status, message, and optionally the field and a stable code. */
export class ApiError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
    readonly path?: string,
    readonly code?: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

type Json = Record<string, unknown>;

// ── store → API ─────────────────────────────────────────────────────────────────────────────────

/** A domain weighting policy in the config file's shape (`policy:` rather than `kind:`, `blend:` rather than `parts:`). */
export function weightingEntry(w: WeightingPolicy | undefined): ClusterView['weighting'] & Json {
  if (!w) return { policy: 'static' };
  const ewma = (s: { decay?: number; explorationBonus?: number }) => ({
    ...(s.decay !== undefined ? { decay: s.decay } : {}),
    ...(s.explorationBonus !== undefined ? { explorationBonus: s.explorationBonus } : {}),
  });
  const gains = (g: { kp?: number; ki?: number; kd?: number } | undefined) => (g ? { gains: { ...g } } : {});
  const penalty = w.kind !== 'static' && w.errorPenalty !== undefined ? { errorPenalty: w.errorPenalty } : {};
  switch (w.kind) {
    case 'pid':
      return { policy: 'pid', setpoint: w.setpoint, ...(w.metric !== undefined ? { metric: w.metric } : {}), ...gains(w.gains), ...penalty };
    case 'ewma':
      return { policy: 'ewma', ...ewma(w), ...penalty };
    case 'blend':
      return {
        policy: 'blend',
        blend: { ...w.parts },
        ...(w.setpoint !== undefined ? { setpoint: w.setpoint } : {}),
        ...(w.metric !== undefined ? { metric: w.metric } : {}),
        ...gains(w.gains),
        ...ewma(w),
        ...penalty,
      };
    default:
      return { policy: 'static' };
  }
}

/** A cluster's settings (no endpoints, no metadata) as a config-file entry. */
export function clusterSettingsEntry(c: ClusterSpec): Json {
  return {
    name: c.name,
    lbPolicy: c.lbPolicy,
    ...(c.leastRequest ? { leastRequest: { ...c.leastRequest } } : {}),
    ...(c.slowStart ? { slowStart: { ...c.slowStart } } : {}),
    ...(c.ringHash ? { ringHash: { ...c.ringHash } } : {}),
    ...(c.maglev ? { maglev: { ...c.maglev } } : {}),
    // Shown, so a PATCH (merged into this entry) or a GET→PUT round trip keeps it: left out, both dropped it with a 200.
    ...(c.localityWeighted ? { localityWeighted: true } : {}),
    connectTimeoutMs: c.connectTimeoutMs,
    http2: c.http2,
    weighting: weightingEntry(c.weighting),
    ...(c.safety ? { safety: { ...c.safety } } : {}),
    ...(c.ejection ? { ejection: { ...c.ejection } } : {}),
    ...(c.probe ? { probe: { ...c.probe } } : {}),
    ...protectionEntry(c),
  };
}

/** The cluster's Envoy-side protection as the operator wrote it (absent keys mean fulcrum's defaults). */
function protectionEntry(c: Pick<ClusterSpec, 'outlierDetection' | 'retryPolicy' | 'healthCheck' | 'clientSideWeightedRoundRobin'>): Json {
  return {
    ...(c.outlierDetection ? { outlierDetection: structuredClone(c.outlierDetection) } : {}),
    ...(c.retryPolicy ? { retryPolicy: structuredClone(c.retryPolicy) } : {}),
    ...(c.healthCheck ? { healthCheck: { ...c.healthCheck } } : {}),
    ...(c.clientSideWeightedRoundRobin ? { clientSideWeightedRoundRobin: { ...c.clientSideWeightedRoundRobin } } : {}),
  };
}

export function endpointEntry(e: EndpointRecord): EndpointEntry {
  return {
    address: e.address,
    port: e.port,
    weight: e.weight,
    priority: e.priority,
    health: e.health,
    locality: { region: e.locality.region, zone: e.locality.zone, subZone: e.locality.subZone },
    state: e.state,
  };
}

export function clusterView(rec: ClusterRecord): ClusterView {
  return clusterViewWith(rec, rec.endpoints.map(endpointEntry));
}

/** clusterView with `endpoints` as given (a write's answer maps the records in slices: sliced-answer.ts). */
export function clusterViewWith<A extends readonly unknown[]>(rec: ClusterRecord, endpoints: A): Omit<ClusterView, 'endpoints'> & { endpoints: A } {
  return {
    ...(clusterSettingsEntry(rec) as Omit<ClusterView, 'endpoints' | 'owner' | 'revision' | 'updatedAt'>),
    ...(rec.autoReason !== undefined ? { autoReason: rec.autoReason } : {}),
    endpoints,
    owner: rec.owner,
    revision: rec.revision,
    updatedAt: rec.updatedAt,
  };
}

export function policyView(rec: ClusterRecord, safetyDefaults: Record<string, number>): PolicyView {
  return {
    cluster: rec.name,
    lbPolicy: rec.lbPolicy,
    ...(rec.leastRequest ? { leastRequest: { ...rec.leastRequest } } : {}),
    ...(rec.slowStart ? { slowStart: { ...rec.slowStart } } : {}),
    ...(rec.ringHash ? { ringHash: { ...rec.ringHash } } : {}),
    ...(rec.maglev ? { maglev: { ...rec.maglev } } : {}),
    ...protectionEntry(rec),
    weighting: weightingEntry(rec.weighting),
    safety: { ...(rec.safety ?? {}) },
    ejection: { ...(rec.ejection ?? {}) },
    safetyDefaults,
    ...(rec.autoReason !== undefined ? { autoReason: rec.autoReason } : {}),
    owner: rec.owner,
    revision: rec.revision,
    updatedAt: rec.updatedAt,
  };
}

/** A listener as the API shows it; `missing`: the clusters its routes name that do not exist now. */
export function listenerView(rec: ListenerRecord, missing: readonly string[] = []): ListenerView {
  return {
    name: rec.name,
    ...(rec.kind === 'api' ? { apiListener: true } : { address: rec.address, port: rec.port }),
    routes: rec.routes.map((r) => ({
      domain: r.domain,
      prefix: r.prefix,
      cluster: r.cluster,
      ...(r.hashPolicy ? { hashPolicy: r.hashPolicy } : {}),
      ...(r.timeoutMs !== undefined ? { timeoutMs: r.timeoutMs } : {}),
    })),
    ...(missing.length > 0 ? { missingClusters: [...missing] } : {}),
    owner: rec.owner,
    revision: rec.revision,
    updatedAt: rec.updatedAt,
  };
}

// ── API → store (validated by the config file's parser) ─────────────────────────────────────────

/** Runs `doc` through the config file's rules; its first problem becomes a 400 pointing into the body. */
function parseDoc(doc: Json, prefix: string): ReturnType<typeof parseConfigValue> {
  try {
    return parseConfigValue(doc, 'request');
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const first = err.problems[0];
    const path = first?.path.startsWith(prefix) ? `/body${first.path.slice(prefix.length)}` : '/body';
    const more = err.problems.length > 1 ? ` (and ${err.problems.length - 1} more problem${err.problems.length > 2 ? 's' : ''})` : '';
    throw new ApiError(400, `${first?.message ?? 'invalid'}${more}`, path);
  }
}

function checkName(bodyName: string | undefined, pathName: string, what: string): void {
  if (bodyName !== undefined && bodyName !== pathName)
    throw new ApiError(400, `${what} ${JSON.stringify(bodyName)} differs from the path's ${JSON.stringify(pathName)}`, '/body/name');
}

type EndpointFields = Omit<EndpointEntryIn, 'state' | 'owner' | 'revision' | 'updatedAt' | 'effectiveWeight' | 'publishedHealth'>;

function splitEndpoint(e: EndpointEntryIn): { fields: EndpointFields; state: OperatorState | undefined } {
  const { state, owner: _o, revision: _r, updatedAt: _u, effectiveWeight: _w, publishedHealth: _h, ...fields } = e;
  return { fields, state };
}

/**
 * A cluster PUT body → the store's input. Without `endpoints` in the body the result has none,
 * which tells the store to leave the cluster's endpoints as they are.
 */
export function parseClusterBody(body: ClusterIn, name: string): ClusterInput {
  checkName(body.name, name, 'cluster name');
  const { owner: _o, revision: _r, updatedAt: _u, autoReason: _a, endpoints, name: _n, ...settings } = body;
  const states = new Map<string, OperatorState>();
  const entries = endpoints?.map((e) => {
    const { fields, state } = splitEndpoint(e);
    if (state) states.set(`${fields.address}|${fields.port}`, state);
    return fields;
  });
  const parsed = parseDoc({ clusters: [{ ...settings, name, ...(entries ? { endpoints: entries } : {}) }] }, '/clusters/0');
  const { endpoints: parsedEndpoints, ...cluster } = parsed.catalog.clusters[0] as ClusterInput & { endpoints: EndpointSpec[] };
  if (!entries) return cluster;
  return {
    ...cluster,
    endpoints: parsedEndpoints.map((e) => {
      const state = states.get(`${e.address}|${e.port}`);
      return state ? { ...e, state } : e;
    }),
  };
}

/**
 * Part of a bulk endpoint body, `endpoints[offset…]`, → the store's input, by the config file's
 * parser (so it accepts what the file accepts). A problem names the entry's index in the whole
 * body: `/body/endpoints/12345/port`. Duplicates are checked within the part only.
 */
export function parseEndpointEntries(entries: readonly ClusterEndpointIn[], offset: number): EndpointSpec[] {
  const states = new Map<string, OperatorState>();
  const fields = entries.map((e) => {
    const split = splitEndpoint(e);
    if (split.state) states.set(`${split.fields.address}|${split.fields.port}`, split.state);
    return split.fields;
  });
  let parsed: ReturnType<typeof parseConfigValue>;
  try {
    parsed = parseConfigValue({ clusters: [{ name: 'bulk', endpoints: fields }] }, 'request');
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const first = err.problems[0];
    const at = /^\/clusters\/0\/endpoints\/(\d+)(.*)$/.exec(first?.path ?? '');
    const index = at ? offset + Number(at[1]) : undefined;
    const path = index === undefined ? '/body/endpoints' : `/body/endpoints/${index}${at?.[2] ?? ''}`;
    throw new ApiError(400, `${index === undefined ? 'endpoints' : `endpoints[${index}]`}: ${first?.message ?? 'invalid'}`, path);
  }
  const parsedEndpoints = (parsed.catalog.clusters[0]?.endpoints ?? []) as EndpointSpec[];
  return parsedEndpoints.map((e) => {
    const state = states.get(`${e.address}|${e.port}`);
    return state ? { ...e, state } : e;
  });
}

/** An endpoint PUT body (address and port from the path) → the store's input. */
export function parseEndpointBody(body: EndpointEntryIn, address: string, port: number): EndpointSpec {
  if (body.address !== undefined && body.address !== address)
    throw new ApiError(400, `address ${JSON.stringify(body.address)} differs from the path's ${JSON.stringify(address)}`, '/body/address');
  if (body.port !== undefined && body.port !== port) throw new ApiError(400, `port ${body.port} differs from the path's ${port}`, '/body/port');
  const { fields, state } = splitEndpoint(body);
  const parsed = parseDoc({ clusters: [{ name: 'endpoint', endpoints: [{ ...fields, address, port }] }] }, '/clusters/0/endpoints/0');
  const e = parsed.catalog.clusters[0]?.endpoints[0] as EndpointSpec;
  return state ? { ...e, state } : e;
}

/** A listener PUT body → the domain listener; every route must name one of `clusters`. */
export function parseListenerBody(body: ListenerIn, name: string, clusters: Iterable<string>): Listener {
  checkName(body.name, name, 'listener name');
  const { owner: _o, revision: _r, updatedAt: _u, name: _n, missingClusters: _m, ...settings } = body;
  const wanted = new Set(settings.routes.map((r) => r.cluster));
  // Only the clusters the routes name, so the parser can check the references (and nothing else).
  const known = [...clusters].filter((c) => wanted.has(c)).map((c) => ({ name: c }));
  const parsed = parseDoc({ clusters: known, listeners: [{ ...settings, name }] }, '/listeners/0');
  return parsed.catalog.listeners[0] as Listener;
}

/** RFC 7396 JSON merge patch. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return patch;
  const out: Json = isObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (key === '__proto__') continue;
    if (value === null) delete out[key];
    else out[key] = mergePatch(out[key], value);
  }
  return out;
}

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Each policy block and the LB policies it is valid with. */
const POLICY_BLOCKS: readonly (readonly [string, readonly string[]])[] = [
  ['leastRequest', ['LEAST_REQUEST']],
  ['slowStart', SLOW_START_POLICIES],
  ['ringHash', ['RING_HASH']],
  ['maglev', ['MAGLEV']],
  ['clientSideWeightedRoundRobin', ['CLIENT_SIDE_WEIGHTED_ROUND_ROBIN']],
  // Envoy's client-side WRR has no locality weighting (protection-schema.ts refuses the pair).
  ['localityWeighted', LB_POLICIES.filter((p) => p !== 'CLIENT_SIDE_WEIGHTED_ROUND_ROBIN')],
];

/**
 * Applies a policy merge patch to a cluster's settings entry. Blocks the new policy would reject
 * (a ringHash block once lbPolicy is no longer RING_HASH, blend fractions once weighting is no
 * longer blend) are dropped unless the patch itself sets them: changing the policy should not
 * need a second field to null the old one's settings.
 */
export function applyPolicyPatch(entry: Json, patch: Json): Json {
  const merged = mergePatch(entry, patch) as Json;
  const pw = isObject(patch.weighting) ? patch.weighting : {};
  const w = isObject(merged.weighting) ? merged.weighting : undefined;
  if (w) {
    if (w.policy !== 'blend' && !('blend' in pw)) delete w.blend;
    if (w.policy !== 'auto' && !('traits' in pw)) delete w.traits;
  }
  const auto = w?.policy === 'auto';
  if (auto && !('lbPolicy' in patch)) delete merged.lbPolicy;
  const lb = merged.lbPolicy ?? 'ROUND_ROBIN';
  for (const [field, policies] of POLICY_BLOCKS) {
    if ((auto || !policies.includes(lb as string)) && !(field in patch)) delete merged[field];
  }
  return merged;
}

/**
 * `input` with the route hash policy `existing` had, when the write names none and the cluster
 * still hashes. Only `weighting: {policy: auto}` sets it (config-file.ts), and what the API shows
 * and a PATCH merges into is the resolved cluster, without `auto`: a PATCH of any field, or a
 * GET→PUT round trip, dropped it and left RING_HASH hashing nothing (a review's finding).
 */
export function withKeptAffinity<T extends Pick<Cluster, 'lbPolicy' | 'routeHashPolicy'>>(input: T, existing: () => Pick<Cluster, 'routeHashPolicy'> | undefined): T {
  const hashes = input.lbPolicy === 'RING_HASH' || input.lbPolicy === 'MAGLEV';
  if (input.routeHashPolicy !== undefined || !hashes) return input;
  // Read only now: on SQLite a cluster read reads every endpoint row.
  const kept = existing()?.routeHashPolicy;
  return kept === undefined ? input : { ...input, routeHashPolicy: kept };
}
