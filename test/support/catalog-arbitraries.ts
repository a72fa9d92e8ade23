/**
 * fast-check arbitraries for VALID fulcrum config documents (the config file's and the admin API's
 * shapes): clusters under every LB policy with its options, weightings, Envoy-side protection,
 * endpoints with localities and priorities, and listeners whose routes carry domains (wildcards,
 * mixed case), prefixes, hash policies and timeouts. "Valid" means fulcrum must accept it and
 * Envoy must ACK what fulcrum makes of it (test/e2e/envoy-parity.test.ts).
 *
 * Listener ports are placeholders (`PORT_PLACEHOLDER`): a test that binds them assigns free ports.
 */
import fc from 'fast-check';
import { LB_POLICIES, HEALTH_STATUSES } from '../../src/catalog/types.js';
import { RETRY_ON } from '../../src/catalog/protection.js';
import { isPrime, MAX_DURATION_SECONDS, RING_HASH_MAX_SIZE } from '../../src/sources/envoy-rules.js';

/** Listener ports are PORT_PLACEHOLDER + k (listeners may share one) until a test maps them to free ports. */
export const PORT_PLACEHOLDER = 20_000;

type Doc = Record<string, unknown>;
export interface ConfigDoc {
  clusters: Doc[];
  listeners: Doc[];
}

const opt = <T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> => fc.option(arb, { nil: undefined, freq: 2 });
/** An object without its undefined values (the config file has no `null`s). */
const defined = (o: Record<string, unknown>): Doc => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
const record = <T extends Record<string, fc.Arbitrary<unknown>>>(shape: T): fc.Arbitrary<Doc> => fc.record(shape).map(defined);

const alnum = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
const chars = (set: string, min: number, max: number): fc.Arbitrary<string> =>
  fc.array(fc.constantFrom(...set), { minLength: min, maxLength: max }).map((a) => a.join(''));

/** The config's name rule: an alphanumeric, then alphanumerics and `._:/-`. */
export const nameArb: fc.Arbitrary<string> = fc
  .tuple(fc.constantFrom(...alnum), fc.oneof(chars(`${alnum}._:/-`, 0, 30), chars(`${alnum}._:/-`, 150, 190)))
  .map(([a, b]) => a + b);

const tokenArb = chars(`${alnum}!#$%&'*+-.^_\`|~`, 1, 24);
const headerNameArb = fc.oneof(tokenArb, fc.constantFrom(':authority', ':path', 'X-User-Id', 'x-session'));

// ── clusters ─────────────────────────────────────────────────────────────────────────────────────

const nextPrime = (n: number): number => {
  let p = n;
  while (!isPrime(p)) p++;
  return p;
};

const ringHashArb = fc
  .record({
    // Kept small enough that Envoy builds the ring quickly (a ring is at least minimumRingSize entries).
    virtualNodesPerHost: opt(fc.integer({ min: 1, max: 2_000 })),
    bounds: opt(fc.tuple(fc.integer({ min: 1, max: 16_384 }), fc.integer({ min: 1, max: RING_HASH_MAX_SIZE }))),
    hashFunction: opt(fc.constantFrom('XX_HASH', 'MURMUR_HASH_2')),
    only: fc.constantFrom('both', 'min', 'max'),
  })
  .map(({ bounds, only, ...rest }) => {
    const [a, b] = bounds ?? [undefined, undefined];
    const lo = a === undefined || b === undefined ? a : Math.min(a, b);
    const hi = a === undefined || b === undefined ? b : Math.max(a, b);
    return defined({ ...rest, minimumRingSize: only === 'max' ? undefined : lo, maximumRingSize: only === 'min' ? undefined : hi });
  });

const cswrrArb = record({
  enableOobLoadReport: opt(fc.boolean()),
  oobReportingPeriodMs: opt(fc.integer({ min: 0, max: 86_400_000 })),
  blackoutPeriodMs: opt(fc.integer({ min: 0, max: 86_400_000 })),
  weightExpirationPeriodMs: opt(fc.integer({ min: 0, max: 86_400_000 })),
  weightUpdatePeriodMs: opt(fc.integer({ min: 0, max: 86_400_000 })),
  errorUtilizationPenalty: opt(fc.double({ min: 0, max: 1_000_000, noNaN: true })),
});

/** Envoy's whole ranges: a day's window at most, aggression > 0, a percent. */
const slowStartArb = record({
  windowMs: fc.integer({ min: 1, max: 86_400_000 }),
  aggression: opt(fc.double({ min: 1e-6, max: 100, noNaN: true })),
  minWeightPercent: opt(fc.double({ min: 0, max: 100, noNaN: true })),
});

/** lbPolicy and its options block (or none, for the default ROUND_ROBIN). */
const lbArb: fc.Arbitrary<Doc> = fc.constantFrom(...LB_POLICIES, undefined).chain((policy): fc.Arbitrary<Doc> => {
  switch (policy) {
    case 'LEAST_REQUEST':
      return record({ lbPolicy: fc.constant(policy), leastRequest: opt(record({ choiceCount: fc.integer({ min: 2, max: 100 }) })), slowStart: opt(slowStartArb) });
    case 'RING_HASH':
      return record({ lbPolicy: fc.constant(policy), ringHash: opt(ringHashArb) });
    case 'MAGLEV':
      return record({ lbPolicy: fc.constant(policy), maglev: opt(record({ tableSize: fc.integer({ min: 2, max: 70_000 }).map(nextPrime) })) });
    case 'CLIENT_SIDE_WEIGHTED_ROUND_ROBIN':
      return record({ lbPolicy: fc.constant(policy), clientSideWeightedRoundRobin: opt(cswrrArb) });
    case 'ROUND_ROBIN':
    case undefined:
      return record({ lbPolicy: fc.constant(policy), slowStart: opt(slowStartArb) });
    default:
      return record({ lbPolicy: fc.constant(policy) });
  }
});

const fraction = fc.double({ min: 0, max: 1, noNaN: true });
const weightingArb: fc.Arbitrary<Doc> = fc.oneof(
  record({ policy: fc.constant('static') }),
  record({ policy: fc.constant('pid'), setpoint: opt(fc.oneof(fc.constant('mean'), fraction)), metric: opt(fc.constantFrom('cpu', 'cpu-latency')), errorPenalty: opt(fc.double({ min: 0, max: 10, noNaN: true })) }),
  record({ policy: fc.constant('ewma'), decay: opt(fc.double({ min: 0.01, max: 1, noNaN: true })), explorationBonus: opt(fc.integer({ min: 0, max: 1000 })) }),
  fc.tuple(fc.integer({ min: 0, max: 100 }), fc.integer({ min: 0, max: 100 })).map(([a, b]) => {
    const [lo, hi] = [Math.min(a, b), Math.max(a, b)];
    return { policy: 'blend', blend: { pid: lo / 100, ewma: (hi - lo) / 100, static: (100 - hi) / 100 } };
  }),
);

const affinityArb = fc.oneof(record({ header: headerNameArb }), record({ cookie: tokenArb }));
const autoArb: fc.Arbitrary<Doc> = record({
  policy: fc.constant('auto'),
  traits: record({
    sessionAffinity: opt(affinityArb),
    heterogeneousCapacity: opt(fc.boolean()),
    longLivedConnections: opt(fc.boolean()),
    latencySensitive: opt(fc.boolean()),
  }),
});

const ms = (min: number, max: number) => opt(fc.integer({ min, max }));
const outlierArb = fc
  .record({
    enabled: opt(fc.boolean()),
    consecutive5xx: opt(fc.integer({ min: 0, max: 10_000 })),
    consecutiveGatewayFailure: opt(fc.integer({ min: 0, max: 10_000 })),
    intervalMs: ms(1, 86_400_000),
    ejection: opt(fc.tuple(fc.integer({ min: 1, max: 86_400_000 }), fc.integer({ min: 1, max: 86_400_000 }))),
    maxEjectionPercent: opt(fc.integer({ min: 0, max: 100 })),
    successRate: opt(record({ enabled: opt(fc.boolean()), minimumHosts: ms(0, 1000), requestVolume: ms(0, 1_000_000), stdevFactor: opt(fc.double({ min: 0, max: 100, noNaN: true })) })),
    failurePercentage: opt(record({ enabled: opt(fc.boolean()), threshold: ms(0, 100), minimumHosts: ms(0, 1000), requestVolume: ms(0, 1_000_000) })),
    splitExternalLocalOriginErrors: opt(fc.boolean()),
  })
  .map(({ ejection, ...rest }) =>
    defined({ ...rest, ...(ejection ? { baseEjectionTimeMs: Math.min(...ejection), maxEjectionTimeMs: Math.max(...ejection) } : {}) }),
  );

const retryArb = fc
  .record({
    enabled: opt(fc.boolean()),
    numRetries: opt(fc.integer({ min: 0, max: 10 })),
    retryOn: opt(fc.uniqueArray(fc.constantFrom(...RETRY_ON), { minLength: 1, maxLength: 5 })),
    codes: opt(fc.uniqueArray(fc.integer({ min: 100, max: 599 }), { minLength: 1, maxLength: 5 })),
    perTryTimeoutMs: ms(1, 86_400_000),
    hostSelectionMaxAttempts: opt(fc.integer({ min: 1, max: 100 })),
    budgetPercent: opt(fc.double({ min: 0, max: 100, noNaN: true })),
    minRetryConcurrency: ms(0, 1_000_000),
    backOff: opt(fc.tuple(fc.integer({ min: 1, max: 86_400_000 }), fc.option(fc.integer({ min: 1, max: 86_400_000 }), { nil: undefined }))),
  })
  .map(({ codes, backOff, ...rest }) => {
    const statusCodesAllowed = rest.retryOn === undefined || rest.retryOn.includes('retriable-status-codes');
    const [base, max] = backOff ?? [];
    return defined({
      ...rest,
      retriableStatusCodes: statusCodesAllowed ? codes : undefined,
      backOff: base === undefined ? undefined : defined({ baseIntervalMs: max === undefined ? base : Math.min(base, max), maxIntervalMs: max === undefined ? undefined : Math.max(base, max) }),
    });
  });

const pathArb = chars(`${alnum}/-._~%!$&'()*+,;=:@ ?#é"<>[]{}|\\^\``, 0, 40).map((p) => `/${p}`);
/**
 * Longest health-check timeout given to a cluster with endpoints. Envoy warms a new or changed
 * cluster until every host's first check has ended (passed, failed or timed out), and over ADS
 * ACKs the CDS update only then. The generated endpoints are random addresses: whether a connect
 * to one is refused, succeeds or goes unanswered (SYN dropped) depends on the machine's network,
 * and an unanswered one keeps the cluster warming, and CDS un-ACKed, for the whole timeout (up to
 * a day). A test waits seconds, so the timeout is bounded well inside its wait; a cluster without
 * endpoints warms at once and keeps the whole range (1 ms to 24 h).
 */
export const WARMING_HEALTH_CHECK_TIMEOUT_MS = 5_000;

const healthCheckArb = (http2: boolean, hasEndpoints: boolean): fc.Arbitrary<Doc> =>
  fc.constantFrom(...(http2 ? (['http', 'tcp', 'grpc'] as const) : (['http', 'tcp'] as const))).chain((kind) =>
    record({
      enabled: opt(fc.boolean()),
      kind: fc.constant(kind),
      path: kind === 'tcp' ? fc.constant(undefined) : opt(kind === 'http' ? pathArb : chars(`${alnum}._`, 0, 30)),
      // Valid from 1 ms, but a proxy probing random addresses every millisecond would load the test machine.
      intervalMs: ms(100, 86_400_000),
      timeoutMs: ms(1, hasEndpoints ? WARMING_HEALTH_CHECK_TIMEOUT_MS : 86_400_000),
      unhealthyThreshold: opt(fc.integer({ min: 1, max: 1000 })),
      healthyThreshold: opt(fc.integer({ min: 1, max: 1000 })),
      noTrafficIntervalMs: ms(1, 86_400_000),
    }),
  );

const localityText = chars(`${alnum}-_. /é`, 0, 12);
const endpointArb = record({
  address: fc.oneof(
    fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 1, max: 254 })).map(([a, b]) => `10.${a}.0.${b}`),
    fc.integer({ min: 1, max: 254 }).map((b) => `127.0.0.${b}`),
    fc.integer({ min: 1, max: 0xffff }).map((b) => `2001:db8::${b.toString(16)}`),
    fc.constantFrom('::1', '::ffff:10.1.2.3', '0.0.0.0'),
  ),
  port: fc.integer({ min: 1, max: 65535 }),
  weight: opt(fc.integer({ min: 1, max: 1_000_000 })),
  priority: opt(fc.integer({ min: 0, max: 127 })),
  health: opt(fc.constantFrom(...HEALTH_STATUSES)),
  locality: opt(record({ region: opt(localityText), zone: opt(localityText), subZone: opt(localityText) })),
});

const endpointsArb = fc.uniqueArray(endpointArb, { maxLength: 6, selector: (e) => `${String(e.address)}|${String(e.port)}` });

/** One cluster (named later by `clustersArb`). */
const clusterArb: fc.Arbitrary<Doc> = fc
  .record({
    lb: lbArb,
    weighting: opt(weightingArb),
    auto: opt(autoArb),
    connectTimeoutMs: ms(1, 600_000),
    http2: opt(fc.boolean()),
    localityWeighted: opt(fc.boolean()),
    endpoints: opt(endpointsArb),
    outlierDetection: opt(outlierArb),
    retryPolicy: opt(retryArb),
    healthCheck: fc.boolean(),
    hcSeed: fc.integer(),
  })
  .chain(({ lb, weighting, auto, healthCheck, hcSeed: _s, ...rest }) => {
    const cswrr = lb.lbPolicy === 'CLIENT_SIDE_WEIGHTED_ROUND_ROBIN';
    // auto chooses the LB policy itself; CSWRR weighs hosts in Envoy (static weighting, no locality weighting).
    const base = auto && !cswrr ? { ...rest, weighting: auto } : { ...rest, ...lb, ...(weighting && !cswrr ? { weighting } : {}) };
    const cluster = defined({ ...base, localityWeighted: cswrr ? undefined : rest.localityWeighted });
    if (!healthCheck) return fc.constant(cluster);
    return healthCheckArb(rest.http2 === true, (rest.endpoints?.length ?? 0) > 0).map((hc) => ({ ...cluster, healthCheck: hc }));
  });

// ── listeners ────────────────────────────────────────────────────────────────────────────────────

const labelArb = chars('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-', 1, 12);
const hostArb = fc.array(labelArb, { minLength: 1, maxLength: 3 }).map((l) => l.join('.'));
export const domainArb: fc.Arbitrary<string> = fc.oneof(
  fc.constant('*'),
  hostArb,
  hostArb.map((h) => `*.${h}`),
  hostArb.map((h) => `*-${h}`),
  hostArb.map((h) => `${h}.*`),
  fc.tuple(hostArb, fc.integer({ min: 1, max: 65535 })).map(([h, p]) => `${h}:${p}`),
  fc.constantFrom('[2001:db8::1]', '[::1]:8080', '10.0.0.1', 'under_score.example', 'é.example', 'a"b', '{x}.example'),
);

const hashPolicyArb = fc.oneof(
  record({ header: headerNameArb }),
  record({ cookie: record({ name: tokenArb, ttlSeconds: opt(fc.oneof(fc.integer({ min: 0, max: 86_400 }), fc.constant(MAX_DURATION_SECONDS))) }) }),
);

const routeArb = (clusters: readonly string[]): fc.Arbitrary<Doc> =>
  record({
    domain: opt(domainArb),
    prefix: opt(pathArb),
    cluster: fc.constantFrom(...clusters),
    hashPolicy: opt(hashPolicyArb),
    timeoutMs: ms(0, 3_600_000),
  });

/** Two spellings of one domain would be two virtual hosts Envoy sees as one: spell each domain as its first route does. */
function spellDomainsAlike(routes: Doc[]): Doc[] {
  const first = new Map<string, string>();
  return routes.map((r) => {
    if (typeof r.domain !== 'string') return r;
    const spelling = first.get(r.domain.toLowerCase()) ?? r.domain;
    first.set(r.domain.toLowerCase(), spelling);
    return { ...r, domain: spelling };
  });
}

const listenerAddressArb = fc.constantFrom(undefined, '127.0.0.1', '0.0.0.0', '::1', '::', '127.0.0.7');
const listenerArb = (clusters: readonly string[]): fc.Arbitrary<Doc> =>
  fc
    .record({ address: listenerAddressArb, routes: fc.array(routeArb(clusters), { minLength: 1, maxLength: 6 }) })
    .map(({ address, routes }) => defined({ address, port: PORT_PLACEHOLDER, routes: spellDomainsAlike(routes) }));

/**
 * Listener i gets PORT_PLACEHOLDER + i, or shares the first listener's port when `share[i]` says
 * so and no listener on that port has its address (0.0.0.0:p beside 127.0.0.1:p, :: beside 0.0.0.0).
 */
function placePorts(listeners: Doc[], share: readonly boolean[]): Doc[] {
  const onFirst = new Set<string>();
  return listeners.map((l, i) => {
    const address = String(l.address ?? '0.0.0.0');
    const shared = i === 0 || (share[i] === true && !onFirst.has(address));
    if (shared) onFirst.add(address);
    return { ...l, port: PORT_PLACEHOLDER + (shared ? 0 : i) };
  });
}

/** A valid config document: 1–4 clusters and 0–3 socket listeners routing to them. */
export const configDocArb: fc.Arbitrary<ConfigDoc> = fc
  .uniqueArray(nameArb, { minLength: 1, maxLength: 4 })
  .chain((names) =>
    fc.record({
      clusters: fc.tuple(...names.map((name) => clusterArb.map((c) => ({ name, ...c })))),
      listeners: fc
        .uniqueArray(nameArb, { maxLength: 3 })
        .chain((ls) => fc.tuple(...ls.map((name) => listenerArb(names).map((l) => ({ name, ...l })))))
        .chain((ls) => fc.array(fc.boolean(), { minLength: ls.length, maxLength: ls.length }).map((share) => placePorts(ls, share))),
    }),
  );

/** The same document with every cluster and listener name prefixed, so successive documents share no resource. */
export function prefixNames(doc: ConfigDoc, prefix: string): ConfigDoc {
  return {
    clusters: doc.clusters.map((c) => ({ ...c, name: `${prefix}${String(c.name)}` })),
    listeners: doc.listeners.map((l) => ({
      ...l,
      name: `${prefix}${String(l.name)}`,
      routes: (l.routes as Doc[]).map((r) => ({ ...r, cluster: `${prefix}${String(r.cluster)}` })),
    })),
  };
}
