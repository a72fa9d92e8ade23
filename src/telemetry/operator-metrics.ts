import { Counter, Gauge, type Registry } from 'prom-client';

/**
 * Metrics for the operator rather than for the data path: which build is running, and how many
 * proxies are in each sync state (what `fulcrum proxies` shows one row at a time).
 */

/** `fulcrum_build_info{version, node_version} 1`, the Prometheus convention for joining on build labels. */
export function registerBuildInfo(registry: Registry, version: string, nodeVersion: string = process.version): void {
  const info = new Gauge({
    name: 'fulcrum_build_info',
    help: 'Always 1; the labels say which fulcrum build and Node.js version run.',
    labelNames: ['version', 'node_version'],
    registers: [registry],
  });
  info.set({ version, node_version: nodeVersion }, 1);
}

/** Counts native-memory trims (src/runtime/native-memory.ts); call what it returns after each one. */
export function registerNativeMemoryTrims(registry: Registry): (reason: string, returnedBytes: number) => void {
  const trims = new Counter({
    name: 'fulcrum_native_memory_trims_total',
    help: "Times freed C-allocator memory was handed back to the kernel (glibc's malloc_trim, when the event loop was quiet), by what prompted it: growth, collected or interval.",
    labelNames: ['reason'],
    registers: [registry],
  });
  const returned = new Counter({
    name: 'fulcrum_native_memory_returned_bytes_total',
    help: 'Resident memory those trims handed back (resident set before minus after each one, when positive).',
    registers: [registry],
  });
  return (reason, returnedBytes) => {
    trims.inc({ reason });
    if (returnedBytes > 0) returned.inc(returnedBytes);
  };
}

/** Counts connections the admin port refused at server.admin.maxConnections or maxConnectionsPerPeer; call what it returns at each. */
export function registerAdminConnectionsRefused(registry: Registry): (limit: 'maxConnections' | 'maxConnectionsPerPeer') => void {
  const refused = new Counter({
    name: 'fulcrum_admin_connections_refused_total',
    help: 'Connections to the admin port closed at accept, by the limit reached: server.admin.maxConnections open in all, or maxConnectionsPerPeer from the peer.',
    labelNames: ['limit'],
    registers: [registry],
  });
  return (limit) => refused.inc({ limit });
}

export const SYNC_STATES = ['SYNCED', 'STALE', 'NACKED', 'NOT_SENT'] as const;

/**
 * `fulcrum_proxies{state}`: connected proxy streams by their worst per-type state (NACKED over
 * STALE over SYNCED), read at scrape time from `source` (one state per stream).
 */
export function registerSyncStates(registry: Registry, source: () => Iterable<string>): void {
  new Gauge({
    name: 'fulcrum_proxies',
    help: 'Connected proxy streams by sync state: NACKED if any xDS type is NACKED, else STALE if any is awaiting an ACK, else SYNCED (NOT_SENT: nothing sent yet).',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const counts = new Map<string, number>(SYNC_STATES.map((s) => [s, 0]));
      for (const s of source()) counts.set(s, (counts.get(s) ?? 0) + 1);
      this.reset();
      for (const [state, n] of counts) this.set({ state }, n);
    },
  });
}

/** A stream's overall state from its per-type states. */
export function worstState(states: Iterable<string>): string {
  const all = new Set(states);
  for (const s of ['NACKED', 'STALE', 'SYNCED']) if (all.has(s)) return s;
  return 'NOT_SENT';
}

/** A cluster's line as the last-resort gauge reads it (ClusterOverview's fields). */
export interface LastResortLine {
  readonly cluster: string;
  readonly lastResort?: string;
}

/**
 * `fulcrum_cluster_last_resort{cluster, sent}`: 1 for each cluster with no endpoint published
 * HEALTHY or UNKNOWN, whose best endpoints left are sent to proxies as UNKNOWN (`sent`: DEGRADED,
 * DRAINING or ALL). Read at scrape time from `source`; only clusters in that state have a series,
 * so its cardinality is the clusters in trouble (alert on `count(fulcrum_cluster_last_resort) > 0`).
 */
export function registerLastResorts(registry: Registry, source: () => Iterable<LastResortLine>): void {
  scrapedGauge(
    registry,
    'fulcrum_cluster_last_resort',
    'Clusters with no endpoint published HEALTHY or UNKNOWN (1 each): proxies are sent their best endpoints left as UNKNOWN and route to them, ' +
      'by cluster and sent (DEGRADED, DRAINING, or ALL: every endpoint, UNHEALTHY and TIMEOUT included).',
    ['cluster', 'sent'],
    function* () {
      for (const line of source()) if (line.lastResort !== undefined) yield [{ cluster: line.cluster, sent: line.lastResort }, 1];
    },
  );
}

/** `fulcrum_lrs_interval_seconds`: the load report interval asked now (it moves with the fleet's reports). */
export function registerLrsInterval(registry: Registry, seconds: () => number): void {
  scrapedGauge(
    registry,
    'fulcrum_lrs_interval_seconds',
    'The load report interval an LRS stream opened now is asked: server.loadReporting.intervalMs, stretched toward maxIntervalMs ' +
      'while one round of the fleet\'s latest reports holds more than entriesPerSecond entries per second. Open streams follow within seconds.',
    [],
    function* () {
      yield [{}, seconds()];
    },
  );
}

/** A reference as the dangling-references gauge reads it (catalog/dangling-references.ts). */
export interface DanglingLine {
  readonly referrer: string;
  readonly name: string;
  readonly cluster: string;
}

/**
 * `fulcrum_dangling_references{referrer, name, cluster}`: 1 for each listener route or node group
 * naming a cluster that does not exist (its owner removed it: a config reload, discovery), which
 * Envoy answers 503 (no healthy upstream). Read at scrape time; series only for those references.
 */
export function registerDanglingReferences(registry: Registry, source: () => Iterable<DanglingLine>): void {
  scrapedGauge(
    registry,
    'fulcrum_dangling_references',
    'References to clusters that do not exist (1 each), by referrer (listener or node-group), its name, and the cluster: ' +
      "proxies answer a listener's requests on those routes 503 until the cluster is back or the reference is removed.",
    ['referrer', 'name', 'cluster'],
    function* () {
      for (const r of source()) yield [{ referrer: r.referrer, name: r.name, cluster: r.cluster }, 1];
    },
  );
}

/** Where the fail-static gauges read (AdaptiveWeights.failStaticClusters, signalsNotFresh). */
export interface SignalStateSources {
  readonly failStatic: () => Iterable<string>;
  readonly notFresh: () => Iterable<{ readonly cluster: string; readonly notFresh: Readonly<Partial<Record<string, number>>> }>;
}

/**
 * What an SRE alerts on when signals stop (fail static): `fulcrum_cluster_fail_static{cluster}`,
 * 1 for each adaptive cluster whose last tick would have taken every endpoint out, so all are
 * published HEALTHY at static weights; and `fulcrum_cluster_signals_not_fresh{cluster,freshness}`,
 * the endpoints steering on data that is stale (weight held), expired (decaying to static) or none
 * (never sent). Read at scrape time; series only for clusters in that state.
 */
export function registerSignalStates(registry: Registry, sources: SignalStateSources): void {
  scrapedGauge(
    registry,
    'fulcrum_cluster_fail_static',
    'Adaptive clusters failing static (1 each): every endpoint would be out, so all are published HEALTHY at static weights.',
    ['cluster'],
    function* () {
      for (const cluster of sources.failStatic()) yield [{ cluster }, 1];
    },
  );
  scrapedGauge(
    registry,
    'fulcrum_cluster_signals_not_fresh',
    'Endpoints of adaptive clusters whose steering data is not fresh after the last tick, by cluster and freshness: ' +
      'stale (weight held), expired (decaying to static), none (never sent: held static). Operator-disabled endpoints are not counted.',
    ['cluster', 'freshness'],
    function* () {
      for (const l of sources.notFresh()) for (const [freshness, n] of Object.entries(l.notFresh)) if (n) yield [{ cluster: l.cluster, freshness }, n];
    },
  );
}

/**
 * A gauge whose series are read from `series` at every scrape, none kept from the scrape before:
 * for states only some clusters are in, so the gauge has series for those alone.
 */
function scrapedGauge<L extends string>(
  registry: Registry,
  name: string,
  help: string,
  labelNames: readonly L[],
  series: () => Iterable<readonly [Partial<Record<L, string>>, number]>,
): void {
  new Gauge({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      for (const [labels, value] of series()) this.set(labels, value);
    },
  });
}
