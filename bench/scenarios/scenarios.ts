/**
 * The scenarios and the rows (balancing setups) of the suite. A scenario is a fleet of queueing
 * backends, an offered load, a number of Envoys sharing it, and timed events; every row runs the
 * same scenario with the same seeded Poisson arrivals.
 */
import type { ColdStart, QueueingBackend } from '../../examples/backends/queueing-backend.js';

export interface EventContext {
  readonly fleet: readonly QueueingBackend[];
  /** Offered load as a fraction of the fleet's initial capacity, split evenly over the Envoys. */
  setLoad(fraction: number): void;
  /**
   * Starts backends of these capacities at the fleet's next indexes and adds them to the cluster
   * (the config file rewritten, as any source adds endpoints); `cold.easeMs` is full-row time.
   */
  join(workers: readonly number[], cold?: ColdStart): Promise<void>;
  /** Backend `i` DRAINING through the admin API, as an operator or a terminating pod does. */
  drain(i: number): Promise<void>;
  /** Backend `i` out of the cluster (the config file rewritten); it listens until killed. */
  remove(i: number): Promise<void>;
}

export interface ScenarioEvent {
  /** Seconds after the load starts, for a full-length row (scaled down with --short). */
  readonly atS: number;
  readonly what: string;
  apply(ctx: EventContext): void | Promise<void>;
  /** Changes who is in the cluster: the oracle's weights follow through the event itself. */
  readonly membership?: boolean;
}

export interface Scenario {
  readonly name: string;
  readonly title: string;
  /** Workers per backend: their relative capacities (the oracle's static weights). */
  readonly workers: readonly number[];
  readonly meanServiceMs: number;
  readonly load: number;
  readonly envoys: number;
  /** ± relative noise on the utilization the backends report. */
  readonly noise?: number;
  readonly events: readonly ScenarioEvent[];
  /**
   * Convergence: the event it is measured from (index; -1 = the start) and the ideal relative
   * allocation after it, over every backend the row ends with (those that joined included; 0 for
   * one taken out). Absent where no allocation is ideal (a slow or failing backend).
   */
  readonly converge?: { readonly after: number; readonly ideal: readonly number[] };
  /** Overshoot is measured on this backend's share. */
  readonly target?: number;
  /** Cluster fields every row gets besides its own (e.g. fulcrum's probes). */
  readonly cluster?: Record<string, unknown>;
  /** The route's timeout (default 10 s: no request of a healthy fleet comes near it). */
  readonly routeTimeoutMs?: number;
}

/** Full-length row: seconds of load, warm-up excluded from the figures, steady window at the end. */
export const TIMING = { durationS: 40, warmS: 10, steadyS: 10 } as const;

// Service times long enough that the whole suite stays near 150-250 requests per second: the
// generator, the backends and fulcrum share one Node process on a small, shared machine.
const DEMO_FLEET = [3, 3, 3, 3, 6, 6];
const DEMO_SERVICE_MS = 100;
const HETERO_SERVICE_MS = 200;
const HETERO_FLEET = [1, 1, 2, 2, 3, 4, 4, 6, 6, 8];
const BIG = 4;

const step = (atS: number, from: number, to: number): ScenarioEvent => ({ atS, what: `load ${Math.round(from * 100)}% → ${Math.round(to * 100)}%`, apply: (c) => c.setLoad(to) });
const withHalved = (fleet: readonly number[], i: number): number[] => fleet.map((w, j) => (j === i ? w / 2 : w));

function on(i: number, what: string, atS: number, apply: (b: QueueingBackend) => void | Promise<void>): ScenarioEvent {
  return {
    atS,
    what: `backend ${i}: ${what}`,
    apply: (c) => {
      const b = c.fleet[i];
      if (!b) throw new Error(`no backend ${i}`);
      return apply(b);
    },
  };
}

const HETERO_STEP: Scenario = {
    name: 'hetero-step',
    title: 'heterogeneous fleet: 10 backends 0.5×..4×, load step 60% → 85%',
    workers: HETERO_FLEET,
    meanServiceMs: HETERO_SERVICE_MS,
    load: 0.6,
    envoys: 1,
    events: [step(20, 0.6, 0.85)],
    converge: { after: 0, ideal: HETERO_FLEET },
  };

const DEATH: Scenario = {
  name: 'death',
  title: 'a 2× backend dies (connection refused) and comes back 10 s later',
  workers: DEMO_FLEET,
  meanServiceMs: DEMO_SERVICE_MS,
  load: 0.6,
  envoys: 1,
  events: [on(BIG, 'killed', 15, (b) => b.kill()), on(BIG, 'revived', 25, (b) => b.revive())],
  converge: { after: 1, ideal: DEMO_FLEET },
  target: BIG,
};

/** `on` for several backends at once (their events at the same moment, one event). */
function onAll(indexes: readonly number[], what: string, atS: number, apply: (b: QueueingBackend) => void | Promise<void>): ScenarioEvent {
  return {
    atS,
    what: `backends ${indexes.join(', ')}: ${what}`,
    apply: async (c) => {
      await Promise.all(indexes.map((i) => on(i, what, atS, apply).apply(c)));
    },
  };
}

/**
 * A zone's outage on the demo fleet at 40%: half its capacity (a 2× and two 1× backends) dies at
 * once (connection refused) and comes back 15 s later; the survivors carry 80% meanwhile. Half the
 * endpoints fail together, past fulcrum's own ejection cap (maxEjectedRatio, a third) and Envoy's
 * default (10%; fulcrum configures 50%), and a balancer must neither send them their old share nor
 * overload the survivors.
 */
const ZONE = [0, 2, BIG];
const ZONE_LOSS: Scenario = {
  name: 'zone-loss',
  title: 'a zone is lost: half the capacity (a 2× and two 1× backends) dies at t = 15 s, back at 30 s; fleet at 40%, survivors at 80%',
  workers: DEMO_FLEET,
  meanServiceMs: DEMO_SERVICE_MS,
  load: 0.4,
  envoys: 1,
  events: [onAll(ZONE, 'killed', 15, (b) => b.kill()), onAll(ZONE, 'revived', 30, (b) => b.revive())],
  converge: { after: 1, ideal: DEMO_FLEET },
  target: BIG,
};

/**
 * Overload: the demo fleet at 70%, then 115% of its capacity for 10 s, then 70% again. No
 * allocation serves 115%; what is measured is that adaptive weights do no harm (no swings that
 * leave capacity idle while queues grow) and that the fleet drains its backlog as fast as the
 * alternatives once the load falls.
 */
const OVERLOAD: Scenario = {
  name: 'overload',
  title: 'overload: the demo fleet at 70%, 115% from t = 15 s to 25 s, then 70% again',
  workers: DEMO_FLEET,
  meanServiceMs: DEMO_SERVICE_MS,
  load: 0.7,
  envoys: 1,
  events: [step(15, 0.7, 1.15), step(25, 1.15, 0.7)],
  converge: { after: 1, ideal: DEMO_FLEET },
};

/** The demo fleet at 70% with events on its first 2× backend, where no allocation is ideal. */
function onTheDemoFleet(name: string, title: string, ...events: ScenarioEvent[]): Scenario {
  return { name, title, workers: DEMO_FLEET, meanServiceMs: DEMO_SERVICE_MS, load: 0.7, envoys: 1, events, target: BIG };
}

const slowed = (atS: number): ScenarioEvent => on(BIG, 'slow dependency ×5', atS, (b) => void (b.slowFactor = 5));

/** A 2× backend dies (connection refused) for `downS` seconds every `everyS`, from `fromS` to `toS`. */
function flapping(fromS: number, toS: number, downS: number, everyS: number): ScenarioEvent[] {
  const events: ScenarioEvent[] = [];
  for (let t = fromS; t + downS <= toS; t += everyS) events.push(on(BIG, 'killed', t, (b) => b.kill()), on(BIG, 'revived', t + downS, (b) => b.revive()));
  return events;
}

const FLAPS = flapping(12, 32, 2, 6);

// An autoscaler's everyday events on the demo fleet. Scale-out: near saturation (85%), a 1× and a
// 2× backend join, leaving the fleet at 62%; the newest 2× is watched for overload.
const NEWCOMERS = [3, 3 * 2];
const SCALED_OUT = [...DEMO_FLEET, ...NEWCOMERS];
const NEWEST_BIG = SCALED_OUT.length - 1;
/** A cold pod: service 5× slower when it starts, normal 10 s later (caches filling, JIT warming). */
const COLD = { factor: 5, easeMs: 10_000 };

function joining(atS: number, workers: readonly number[], cold?: typeof COLD): ScenarioEvent {
  const what = `${workers.map((w) => `${w / 3}×`).join(' and ')} backends join${cold ? ` cold (service ×${cold.factor}, normal after ${cold.easeMs / 1000} s)` : ''}`;
  return { atS, what, membership: true, apply: (c) => c.join(workers, cold) };
}

const SCALE_OUT: Scenario = {
  name: 'scale-out',
  title: 'scale-out: the demo fleet at 85%; at t = 15 s a 1× and a 2× backend join (62% after)',
  workers: DEMO_FLEET,
  meanServiceMs: DEMO_SERVICE_MS,
  load: 0.85,
  envoys: 1,
  events: [joining(15, NEWCOMERS)],
  converge: { after: 0, ideal: SCALED_OUT },
  target: NEWEST_BIG,
};

// Scale-in: a 2× backend is drained (as a terminating pod is), taken out of the cluster 5 s later
// and its process ends 1 s after that; the others absorb its share (65% → 87%).
const SCALE_IN: Scenario = {
  name: 'scale-in',
  title: 'scale-in: the demo fleet at 65%; a 2× backend drained at t = 15 s, removed at 20 s, gone at 21 s (87% after)',
  workers: DEMO_FLEET,
  meanServiceMs: DEMO_SERVICE_MS,
  load: 0.65,
  envoys: 1,
  events: [
    { atS: 15, what: `backend ${BIG}: drained`, membership: true, apply: (c) => c.drain(BIG) },
    { atS: 20, what: `backend ${BIG}: removed`, membership: true, apply: (c) => c.remove(BIG) },
    on(BIG, 'process ends', 21, (b) => b.kill()),
  ],
  converge: { after: 0, ideal: DEMO_FLEET.map((w, i) => (i === BIG ? 0 : w)) },
  target: BIG + 1,
};

export const SCENARIOS: readonly Scenario[] = [
  {
    name: 'headline',
    title: 'the demo: 6 backends (two 2×) at 70%, one 2× backend loses half its workers',
    workers: DEMO_FLEET,
    meanServiceMs: DEMO_SERVICE_MS,
    load: 0.7,
    envoys: 1,
    events: [on(BIG, 'workers 6 → 3', 20, (b) => b.setWorkers(3))],
    converge: { after: 0, ideal: withHalved(DEMO_FLEET, BIG) },
    target: BIG,
  },
  HETERO_STEP,
  onTheDemoFleet('slow-dependency', 'slow dependency: a 2× backend answers 5× slower, CPU unchanged', slowed(20)),
  onTheDemoFleet('fast-fail', 'fast-failing backend: a 2× backend answers 50% of requests with a quick 503', on(BIG, 'fast-fail 50%', 20, (b) => void (b.fastFail = 0.5))),
  DEATH,
  // The same death with fulcrum probing every endpoint (TCP, 1 s): the probes take the dead
  // backend out for every row, Envoy's own policies too, and under an adaptive policy its comeback
  // starts on probation at a quarter of its share.
  { ...DEATH, name: 'death-probed', title: 'a 2× backend dies and comes back 10 s later; fulcrum probes every endpoint (TCP, 1 s)', cluster: { probe: { kind: 'tcp', intervalMs: 1000, timeoutMs: 500 } } },
  {
    name: 'noisy',
    title: 'noisy utilization: ±20% on what the backends report, heterogeneous fleet at 70%',
    workers: HETERO_FLEET,
    meanServiceMs: HETERO_SERVICE_MS,
    load: 0.7,
    envoys: 1,
    noise: 0.2,
    events: [],
    converge: { after: -1, ideal: HETERO_FLEET },
  },
  {
    name: 'low-load',
    title: 'low load: the demo fleet at 20%',
    workers: DEMO_FLEET,
    meanServiceMs: DEMO_SERVICE_MS,
    load: 0.2,
    envoys: 1,
    events: [],
    converge: { after: -1, ideal: DEMO_FLEET },
  },
  // A black hole: requests to it end only at the route timeout (Envoy answers 504), a few seconds
  // in a real deployment rather than the rig's 10 s.
  {
    ...onTheDemoFleet(
      'hang',
      'a 2× backend hangs (accepts, never answers) from t = 20 s, answers again at 30 s; route timeout 3 s',
      on(BIG, 'hangs', 20, (b) => b.setHung(true)),
      on(BIG, 'answers again', 30, (b) => b.setHung(false)),
    ),
    converge: { after: 1, ideal: DEMO_FLEET },
    routeTimeoutMs: 3_000,
  },
  // Too short an outage for 3 failed probes at 1 s: what keeps it out is outlier detection (Envoy's
  // and fulcrum's, both with back-off), or nothing.
  {
    ...DEATH,
    name: 'flap',
    title: 'a 2× backend flaps: down 2 s every 6 s from t = 12 s to 32 s; fulcrum probes every endpoint (TCP, 1 s)',
    events: FLAPS,
    converge: { after: FLAPS.length - 1, ideal: DEMO_FLEET },
    cluster: { probe: { kind: 'tcp', intervalMs: 1000, timeoutMs: 500 } },
  },
  {
    ...onTheDemoFleet('recovery', 'a 2× backend answers 5× slower from t = 15 s, recovers at 25 s', slowed(15), on(BIG, 'recovered', 25, (b) => void (b.slowFactor = 1))),
    converge: { after: 1, ideal: DEMO_FLEET },
  },
  { ...HETERO_STEP, name: 'multi-envoy', title: '4 Envoys each sending a quarter: heterogeneous fleet, load step 60% → 85%', envoys: 4 },
  SCALE_OUT,
  { ...SCALE_OUT, name: 'scale-out-cold', title: 'scale-out, cold: as scale-out, but the newcomers start 5× slower, normal after 10 s', events: [joining(15, NEWCOMERS, COLD)] },
  SCALE_IN,
  ZONE_LOSS,
  OVERLOAD,
];

export interface Row {
  readonly name: string;
  readonly what: string;
  /** The cluster's fields besides name and endpoints; `weights` gives each endpoint's static weight. */
  cluster(workers: readonly number[]): Record<string, unknown>;
  weights(workers: readonly number[]): number[];
  /** Adaptive policies that read latency get it from a reporting agent (ORCA latency is not mapped yet). */
  readonly latencyAgent: boolean;
  /** Knows the truth: its static weights are rewritten to the ideal at the convergence event. */
  readonly oracle?: boolean;
}

const ones = (w: readonly number[]): number[] => w.map(() => 1);
/** fulcrum's recommended default: pid with its defaults (cpu-latency metric, error penalty, ejection). */
const PID = { policy: 'pid' };

/** `lbPolicy` null: the policy chooses it (auto). */
function fulcrumRow(name: string, weighting: Record<string, unknown>, latencyAgent: boolean, lbPolicy: string | null = 'ROUND_ROBIN'): Row {
  return {
    name,
    what: `fulcrum ${String(weighting.policy)}${lbPolicy ? ` (${lbPolicy})` : ''}`,
    cluster: () => ({ ...(lbPolicy ? { lbPolicy } : {}), weighting }),
    weights: ones,
    latencyAgent,
  };
}

export const ROWS: readonly Row[] = [
  { name: 'oracle', what: 'static weights = true capacities (rewritten when they change)', cluster: () => ({ lbPolicy: 'ROUND_ROBIN' }), weights: (w) => [...w], latencyAgent: false, oracle: true },
  { name: 'round-robin', what: 'Envoy ROUND_ROBIN, equal weights', cluster: () => ({ lbPolicy: 'ROUND_ROBIN' }), weights: ones, latencyAgent: false },
  { name: 'least-request', what: 'Envoy LEAST_REQUEST, choice 2', cluster: () => ({ lbPolicy: 'LEAST_REQUEST', leastRequest: { choiceCount: 2 } }), weights: ones, latencyAgent: false },
  // What an operator of cold-starting backends adds to least request: Envoy's slow start (10 s window, its defaults otherwise).
  { name: 'lr-slow-start', what: 'Envoy LEAST_REQUEST, choice 2, slow start over 10 s', cluster: () => ({ lbPolicy: 'LEAST_REQUEST', leastRequest: { choiceCount: 2 }, slowStart: { windowMs: 10_000 } }), weights: ones, latencyAgent: false },
  { name: 'client-wrr', what: 'Envoy client-side WRR (ORCA in-band)', cluster: () => ({ lbPolicy: 'CLIENT_SIDE_WEIGHTED_ROUND_ROBIN' }), weights: ones, latencyAgent: false },
  fulcrumRow('static', { policy: 'static' }, false),
  fulcrumRow('pid', PID, false),
  // The same weights under Envoy's LEAST_REQUEST: with unequal weights Envoy picks by weight ÷
  // (active requests + 1), so fulcrum's fleet-wide weights set the shares and each Envoy's own
  // count of requests in flight corrects every pick between two load reports.
  fulcrumRow('pid-lr', PID, false, 'LEAST_REQUEST'),
  fulcrumRow('pid-cpu', { policy: 'pid', metric: 'cpu' }, false),
  // Latency reaches fulcrum as the backends' ORCA named_metrics.latency_ms through Envoy's load
  // reports (the default metric mapping); no side channel.
  fulcrumRow('ewma', { policy: 'ewma' }, false),
  fulcrumRow('blend', { policy: 'blend', blend: { pid: 0.5, ewma: 0.5 } }, false),
  fulcrumRow('auto', { policy: 'auto', traits: { heterogeneousCapacity: true, latencySensitive: true } }, false, null),
];
