/**
 * In-process fulcrum replicas for the HA tests: each with its own etcd client, real weight engine
 * (AdaptiveWeights + WeightLoop), signal store and HaReplica, sharing one catalog. A fleet model
 * stands in for the backends: endpoints of unequal capacity whose CPU follows the weights served.
 */
import { Etcd3 } from 'etcd3';
import { pino } from 'pino';
import { WeightEngine } from '../../src/balancing/engine/weight-engine.js';
import type { Catalog } from '../../src/catalog/types.js';
import type { EndpointOverride } from '../../src/catalog/weight-overrides.js';
import { HaReplica } from '../../src/ha/replica.js';
import { SignalStore } from '../../src/signals/signal-store.js';
import { AdaptiveWeights } from '../../src/weights/adaptive-weights.js';
import { WeightLoop } from '../../src/weights/weight-loop.js';
import { cluster, endpoint } from '../catalog/helpers.js';

export const TICK_MS = 500;
/** Endpoint i of every cluster serves CAPACITY[i] units: the converged weights are 1:2:4. */
export const CAPACITY = [1, 2, 4] as const;
const LOAD = 3.5;

export const keyOf = (c: number, i: number): string => `10.${c}.0.${i + 1}:8080`;

export function fleetCatalog(clusters: number): Catalog {
  return {
    clusters: Array.from({ length: clusters }, (_, c) =>
      cluster(
        `svc-${c}`,
        CAPACITY.map((_, i) => endpoint(`10.${c}.0.${i + 1}`)),
        { weighting: { kind: 'pid', setpoint: 'mean', metric: 'cpu' } },
      ),
    ),
    listeners: [],
    nodeGroups: [],
  };
}

/** An etcd client that reconnects its watches within 300 ms (the default backs off up to 30 s). */
export function etcdClient(endpoints: readonly string[]): Etcd3 {
  const quick = { duration: 300, next: () => quick };
  return new Etcd3({ hosts: [...endpoints], dialTimeout: 2_000, faultHandling: { watchBackoff: quick } });
}

export interface TestReplica {
  readonly id: string;
  readonly client: Etcd3;
  readonly adaptive: AdaptiveWeights;
  readonly store: SignalStore;
  readonly ha: HaReplica;
  readonly loop: WeightLoop;
  /** Engine ticks run so far. */
  readonly ticks: number;
  /** False once killed or stopped. */
  alive: boolean;
}

export async function startReplica(id: string, endpoints: readonly string[], catalog: Catalog, prefix: string, leaseTtlSeconds?: number): Promise<TestReplica> {
  const client = etcdClient(endpoints);
  const log = pino({ level: process.env.HA_TEST_LOG ?? 'silent' }).child({ replica: id });
  const adaptive = new AdaptiveWeights(new WeightEngine({ safety: { tickMs: TICK_MS } }));
  adaptive.setCatalog(catalog);
  const store = new SignalStore();
  const ha = new HaReplica({ client, prefix, replicaId: id, tickMs: TICK_MS, weights: adaptive, signals: store, log, ...(leaseTtlSeconds ? { leaseTtlSeconds } : {}) });
  ha.setCatalog(catalog);
  const count = { ticks: 0 };
  const loop = new WeightLoop({
    adaptive,
    signals: store,
    archive: { loadWeights: () => new Map(), saveAllWeights: () => undefined },
    tickMs: TICK_MS,
    publish: () => undefined,
    onTicked: () => count.ticks++,
  });
  await ha.start();
  loop.start();
  return {
    id,
    client,
    adaptive,
    store,
    ha,
    loop,
    alive: true,
    get ticks() {
      return count.ticks;
    },
  };
}

export async function stopReplica(r: TestReplica): Promise<void> {
  if (r.alive) {
    r.alive = false;
    r.loop.stop();
    await r.ha.stop();
  }
  r.client.close();
}

/** The fleet model: each endpoint's CPU for the weights a cluster is served with. */
export function cpuFor(weights: ReadonlyMap<string, EndpointOverride> | undefined, c: number): number[] {
  const w = CAPACITY.map((_, i) => weights?.get(keyOf(c, i))?.weight ?? 1);
  const sum = w.reduce((a, b) => a + b, 0);
  return w.map((x, i) => Math.min(1.5, ((x / sum) * LOAD) / (CAPACITY[i] as number)));
}

/**
 * Feeds samples every 200 ms: for each cluster, the CPU its served weights produce, recorded
 * on the replica `landsOn` picks (signals land wherever the proxy or agent is connected).
 */
export function driveFleet(
  clusters: number,
  landsOn: (c: number, round: number) => TestReplica | undefined,
  served: (c: number) => ReadonlyMap<string, EndpointOverride> | undefined,
): () => void {
  let round = 0;
  const timer = setInterval(() => {
    round++;
    for (let c = 0; c < clusters; c++) {
      const r = landsOn(c, round);
      if (r === undefined || !r.alive) continue;
      const cpu = cpuFor(served(c), c);
      cpu.forEach((v, i) => r.store.record(`svc-${c}`, keyOf(c, i), { at: Date.now(), cpu: v }));
    }
  }, 200);
  return () => clearInterval(timer);
}
