/**
 * The weight engine: per cluster, per tick, policy + samples + probe results → the integer
 * weight and health to publish for every endpoint, with an explanation of each.
 *
 * Pure and deterministic: no I/O, no clock. Time arrives as `now` (ms) in `tick` and as the
 * `at` of samples and probe results; the same calls in the same order give the same output.
 *
 * Stages, per cluster, in the order they run:
 *
 *  0. Fleet outlier detector (tick/ejection.ts): endpoints whose error rate is far above their
 *     peers' are ejected for a back-off (published UNHEALTHY), then return on probation.
 *  1. Health gate. Operator UNHEALTHY/DRAINING/TIMEOUT → out. Otherwise the endpoint's
 *     HealthTracker (health.ts: 3 failures out, backoff, 3 successes back) decides; an
 *     endpoint nobody probed is AVAILABLE: missing data is not ill health. If that would
 *     leave no eligible endpoint serving, **fail static**: every eligible endpoint is
 *     published HEALTHY at its static weight and the explanations say so.
 *  2. Joiners. New endpoints, endpoints back from UNHEALTHY and endpoints whose static weight
 *     changed start at their fair share: static weight × the cluster scale (mean of w/static
 *     over continuing endpoints). Weights are relative, so the scale is arbitrary; tying
 *     everything to it keeps floor, ceiling and decay meaningful whatever it is.
 *  3. Controller (policy): PID, EWMA, static, or a blend of their normalized outputs.
 *     Only endpoints with fresh data are steered; the others keep their weight here. Errors
 *     count against an endpoint in every adaptive policy (tick/pid.ts, tick/ewma.ts).
 *  4. Freshness override. Data older than staleAfterMs: hold the endpoint's weight. Older
 *     than decayAfterMs (or never seen under a PID policy): decay toward the fair share with
 *     a half-life. This runs before the safety clamps so that whatever produced a weight,
 *     the clamps below have the last word.
 *  5. Step limit: within ×/÷ maxStepRatio of the weight published before this tick.
 *  6. Floor and ceiling: [minWeightRatio, maxWeightRatio] × fair share. The floor wins over
 *     the step limit: every endpoint keeps enough traffic to keep reporting.
 *  7. Hysteresis: publish only if some endpoint moved more than `hysteresis` relative to
 *     what is published, or the set, health or fail-static status changed. On a hold the
 *     internal weights keep moving (so small corrections accumulate until worth a push)
 *     and the published integers are reused exactly.
 *  8. Integer conversion (integer-weights.ts): one scale for all localities of the cluster,
 *     ratios kept to 1/integerResolution of the largest weight, every weight >= 1, every
 *     locality's sum <= 2^32 − 1.
 *
 * PID actuation, Robinhood style. Each endpoint has a PidController fed with its utilization
 * (measurement) against the setpoint (cluster mean, or a fixed target). The controller's
 * error is setpoint − measurement, so an over-utilized endpoint has a negative output, and
 *     w ← w · exp(k · output)
 * lowers its weight. The exponential form, rather than w · (1 + output): keeps w > 0 for any
 * output, is symmetric (+x then −x returns to the same weight, where (1 + x)(1 − x) = 1 − x²
 * drifts down), and composes with the multiplicative step limit. The updated weights of the
 * steered endpoints are then normalized to their previous sum, so steering moves traffic
 * between them without changing the share of the endpoints it did not steer (held, stale).
 * The weight itself integrates the output, so the PID's P term acts like an integral on
 * log-weight; the seed's small ki and kd damp it (see the fleet simulation in the tests).
 * A controller runs only when its endpoint has a new sample: re-applying the same sample
 * every tick would keep pushing before the fleet can show the effect of the last push.
 *
 * EWMA: weight ∝ static weight / max(estimate − bonus, 1 ms) (ewma.ts). An endpoint with no
 * latency sample yet is weighted optimistically, as the best measured endpoint, so it keeps
 * being explored without the bonus alone (1/1 ms) sending it 20× the traffic; no endpoint's
 * bonus makes it better than the best measured latency.
 *
 * Blend: each part yields a share vector over the serving endpoints; the target is the
 * fraction-weighted sum of shares. In a blend the PID keeps its own weight vector (bounded
 * by floor and ceiling), since the published weights are no longer its alone.
 *
 * Each stage lives in tick/ as a small function over the tick's Frame (typed arrays, one slot
 * per endpoint); this file owns the state between ticks and strings the stages together.
 *
 * Explanations are built on demand from a per-tick snapshot (explanations.ts), so a tick
 * over 10,000 endpoints does not allocate 10,000 objects nobody reads.
 */
import { EwmaLatency } from '../ewma.js';
import { HEALTH_DEFAULTS, HealthTracker, type HealthTransition } from '../health.js';
import { pidParams, type PidParams } from '../pid.js';
import { cell, newPidRows, noteSample, PR_PENDING, PR_W, ROW as PID_ROW, setCell, type PidRows } from './pid-rows.js';
import { carriedPositions, carriedPositionSteps, NEW_ENDPOINT, RowRuns } from './carried-rows.js';
import { exportCluster, importCluster, type ExportedClusterState } from './cluster-export.js';
import { ClusterTickRun } from './cluster-tick-run.js';
import { DepartedMemory, leaversOf, resumeDeparted } from './departed.js';
import { carryErrorRows, lastReportFailing, observeErrors, windowFailing } from './error-window.js';
import { carryHeldWeights, forgetNewcomers, keepHeldWeights, restoreHeldRow } from './held-weights.js';
import { TickExplanations } from './explanations.js';
import { isSet, type ClusterState, type EndpointState, type FieldTimes, type PidConfig } from './state.js';
import { policyParts, resolveEjection, resolveSafety, validateEndpoint, validateEndpoints, validatePolicy, validateSample } from './stages.js';
import { inChunks, runToEnd } from '../steps.js';
import { clampAll } from './tick/clamps.js';
import { runController, runControllerSteps } from './tick/controller.js';
import { runEjection, runEjectionSteps } from './tick/ejection.js';
import { mayStall, stalledAlone } from './tick/stall.js';
import { followsReport, noteBacklog, sharePending } from './tick/backlog.js';
import { SharedSettings } from './shared-settings.js';
import { newFrame, newTickScratch, recycleFrame, type Frame } from './tick/frame.js';
import { readingWindowMs } from './tick/freshness.js';
import { gateHealth, gateHealthSteps } from './tick/health-gate.js';
import { joinAndScale, joinAndScaleSteps } from './tick/join.js';
import { publish, publishSteps, type Published } from './tick/publish.js';
import {
  BLEND_PID_DEFAULTS,
  DEFAULT_ERROR_PENALTY,
  DEFAULT_INTEGER_RESOLUTION,
  DEFAULT_PID_METRIC,
  PID_ACTUATION_GAIN,
  type ClusterTick,
  type EjectionSettings,
  type EngineEndpoint,
  type ProbeResult,
  type PublishedHealth,
  type Sample,
  type SafetySettings,
  type TickResult,
  type WeightEngineOptions,
  type WeightingPolicy,
} from './types.js';
import { steersOn } from './steering.js';

/** Distinct PID settings whose params objects the engine shares between clusters (then it starts over). */
const MAX_SHARED_PID_PARAMS = 64;

/** Latency smoothing for the PID's latency metrics: a new sample's share at one per tick. */
const PID_LATENCY_DECAY = 0.5;

/**
 * An endpoint's merged sample: each field from `next`, or from `prev` where `next` lacks it. One
 * shape for every sample (a field none carried is undefined): spreading samples of the shapes
 * sources send (agents: cpu and latency; load reports: rps, errors, inflight) made each merge a
 * generic copy, and this runs for every sample of the fleet.
 */
function mergedSample(prev: Sample | undefined, next: Sample): Sample {
  return {
    // The latest of any field (`next` may be older, holding only fields newer than held: newerFields).
    at: prev === undefined || next.at > prev.at ? next.at : prev.at,
    cpu: next.cpu ?? prev?.cpu,
    inflight: next.inflight ?? prev?.inflight,
    latencyMs: next.latencyMs ?? prev?.latencyMs,
    errors: next.errors ?? prev?.errors,
    rps: next.rps ?? prev?.rps,
  };
}

/**
 * What of `sample` the endpoint takes: all of it unless it is older than the endpoint's latest
 * sample; then only the fields newer than the endpoint's own value of each (another source's
 * sample, stamped later, came between its measuring and its delivery). Undefined: nothing newer.
 */
function newerFields(e: EndpointState, sample: Sample): Sample | undefined {
  if (e.sample === undefined || sample.at >= e.sample.at) return sample;
  const t = e.fieldAt ?? fieldTimesOf(e.sample);
  const at = sample.at;
  const cpu = at > t.cpu ? sample.cpu : undefined;
  const inflight = at > t.inflight ? sample.inflight : undefined;
  const latencyMs = at > t.latencyMs ? sample.latencyMs : undefined;
  const traffic = at > t.traffic && sample.rps !== undefined;
  if (cpu === undefined && inflight === undefined && latencyMs === undefined && !traffic) return undefined;
  return { at, cpu, inflight, latencyMs, rps: traffic ? sample.rps : undefined, errors: traffic ? sample.errors : undefined };
}

/** Each field of `s` as taken at `s.at` (a sample whose fields' own times were not kept: all as old as it). */
function fieldTimesOf(s: Sample | undefined): FieldTimes {
  const at = (present: unknown): number => (s !== undefined && present !== undefined ? s.at : Number.NEGATIVE_INFINITY);
  return { cpu: at(s?.cpu), inflight: at(s?.inflight), latencyMs: at(s?.latencyMs), traffic: at(s?.rps) };
}

/** Records when the fields `taken` carries were taken. */
function noteFieldTimes(e: EndpointState, taken: Sample): void {
  const t = (e.fieldAt ??= fieldTimesOf(e.sample));
  if (taken.cpu !== undefined) t.cpu = taken.at;
  if (taken.inflight !== undefined) t.inflight = taken.at;
  if (taken.latencyMs !== undefined) t.latencyMs = taken.at;
  if (taken.rps !== undefined) t.traffic = taken.at;
}

/**
 * Keeps a load report's success counts for the stall rule (tick/stall.ts): only with the rps and
 * inflight of the same sample. Counts the cluster's endpoints whose flow could show a stall.
 * Returns whether this report raised an alarm (WeightEngine.takeAlarms): the endpoint now looks
 * stalled on its own, or a backlog drain became pending, either of which its next tick acts on.
 */
function noteFlow(c: ClusterState, e: EndpointState, taken: Sample): boolean {
  if (taken.successes === undefined || taken.rps === undefined || taken.inflight === undefined) return false;
  const before = mayStall(e.flow, e.flowPrevInflight) ? 1 : 0;
  const wasStalled = before === 1 && stalledAlone({ sample: e.flow as Sample, prevInflight: e.flowPrevInflight }, c.ejection);
  const follows = followsReport(e.flow, taken, readingWindowMs(c.safety));
  e.flowPrevInflight = e.flow?.inflight ?? Number.NaN;
  e.flow = taken;
  c.stallCandidates += (mayStall(e.flow, e.flowPrevInflight) ? 1 : 0) - before;
  const pending = sharePending(e.drain);
  c.draining += noteBacklog(e, taken, follows);
  if (e.ejection?.until !== undefined) return false;
  // Only as it starts: a hung endpoint's every later report (one per proxy) raises none.
  const stalls = c.ejection.enabled && !wasStalled && stalledAlone({ sample: taken, prevInflight: e.flowPrevInflight }, c.ejection);
  return stalls || (!pending && sharePending(e.drain) && c.parts.pid > 0);
}

/** Endpoint i's latest report trips the all-failing rule on its own (tick/ejection.ts), with ejection on. */
const allFailing = (c: ClusterState, i: number): boolean => c.ejection.enabled && lastReportFailing(c.errors, i, Math.max(1, c.ejection.minRequests / 4), c.ejection.allFailingRatio);

/**
 * Endpoint i's error window fails at least the lowest rate an outlier rule could eject it at
 * (tick/ejection.ts), with ejection on: the failure-percentage rule's ratio, or the success-rate
 * rule's minimum gap (its peers failing none). Necessary, not sufficient: the tick's rules test its
 * peers too.
 */
const outlierRate = (c: ClusterState, i: number): boolean =>
  c.ejection.enabled && windowFailing(c.errors, i, c.ejection.minRequests, Math.min(c.ejection.failureRatio, c.ejection.minGap));

/** The endpoints of `order` whose flow could show a stall (ClusterState.stallCandidates). */
function stallCandidatesOf(order: readonly EndpointState[]): number {
  let n = 0;
  for (const e of order) if (mayStall(e.flow, e.flowPrevInflight)) n++;
  return n;
}

export class WeightEngine {
  private readonly clusters = new Map<string, ClusterState>();
  /** The cluster tick in flight between two of its steps (startClusterTick), if any. */
  private flight: ClusterTickRun | undefined;
  private readonly safety: Partial<SafetySettings>;
  private readonly ejection: Partial<EjectionSettings>;
  private readonly healthOptions: WeightEngineOptions['health'];
  private readonly resolution: number;
  /**
   * One PidParams object per distinct setting (gains per tick), shared by the clusters that use it.
   * Measured at 500 × 20: with a params object per cluster, V8 boxed a heap number per PID update
   * (the update reads the gains from whichever object the cluster has: bench/RESULTS.md, pid6).
   */
  private readonly sharedPidParams = new Map<string, PidParams>();
  /** The clusters' settings objects, one for each distinct value (shared-settings.ts). */
  private readonly shared = new SharedSettings();
  /** The vectors a cluster's tick uses only while it runs (tick/frame.ts), shared by every cluster's. */
  private readonly scratch = newTickScratch();
  /**
   * The engine's time between ticks: the latest `now` it ticked at (-Infinity before the first).
   * When an endpoint left, and whether what its cluster remembers of it is still due (departed.ts).
   */
  private clock = Number.NEGATIVE_INFINITY;
  /** Clusters whose signals raised an alarm since takeAlarms last ran. */
  private readonly alarms = new Set<string>();

  constructor(options: WeightEngineOptions = {}) {
    resolveSafety(options.safety); // validate early
    resolveEjection(options.ejection);
    this.safety = { ...options.safety };
    this.ejection = { ...options.ejection };
    this.healthOptions = options.health;
    new HealthTracker(options.health); // validate early
    this.resolution = options.integerResolution ?? DEFAULT_INTEGER_RESOLUTION;
    if (!Number.isInteger(this.resolution) || this.resolution < 1) throw new RangeError('integerResolution must be an integer >= 1');
  }

  /**
   * Creates or replaces a cluster. Endpoints that persist (same key) keep their health history,
   * controller state and weight; policy changes keep the weights (no traffic slosh) and let the
   * step limit carry the cluster to the new policy's targets. A changed static weight makes the
   * endpoint rejoin at its new fair share. An endpoint removed with a back-off running and listed
   * again resumes it (departed.ts). `safety` and `ejection` override the engine's settings.
   */
  setCluster(
    name: string,
    endpoints: readonly EngineEndpoint[],
    policy: WeightingPolicy,
    safety?: Partial<SafetySettings>,
    ejection?: Partial<EjectionSettings>,
  ): void {
    validateEndpoints(endpoints);
    validatePolicy(policy);
    const resolvedSafety = resolveSafety(this.safety, safety);
    const resolvedEjection = resolveEjection(this.ejection, ejection);
    if (this.deferred(name, () => this.setCluster(name, endpoints, policy, safety, ejection))) return;
    const existing = this.clusters.get(name);
    const plan = this.planFor(existing, policy, resolvedSafety);
    // Read before endpointState refreshes the persisting states' fields.
    const keptKeys = keptIndex(existing, endpoints, resolvedEjection);
    const keptLocalities = keptGroups(existing, endpoints);
    const order = endpoints.map((ep) => this.endpointState(ep, existing, policy, resolvedSafety, resolvedEjection, plan.reset));
    const layout = {
      ...(keptKeys ? { ...keptKeys, statics: order.map((e) => e.staticWeight) } : { order, ...indexed(order) }),
      ...(keptLocalities ?? localityLayout(order.length, (i) => (order[i] as EndpointState).locality)),
    };
    this.install(name, existing, plan, layout, keptKeys ? undefined : carriedPositions(order, existing?.index), { policy, safety: resolvedSafety, ejection: resolvedEjection });
  }

  /**
   * setCluster for a cluster of thousands of endpoints, prepared in steps of `chunk` endpoints
   * (a yield between two; the catalog feed runs one per turn of the event loop) and installed by
   * `commitCluster` in one short step: at 20k endpoints the whole call held the event loop for
   * 50–100 ms. Prepared: the validation, which endpoint states persist and the new ones, the key
   * index and the locality groups — nothing a tick, a sample or a probe changes, and nothing the
   * engine sees: a caller may drop a preparation between steps. What they do change (the
   * persisting states' fields, the PID rows, the held weights) is carried over at commit, as
   * setCluster does. Throws where setCluster would, before anything changes.
   */
  *prepareCluster(
    name: string,
    endpoints: readonly EngineEndpoint[],
    policy: WeightingPolicy,
    options: { readonly safety?: Partial<SafetySettings>; readonly ejection?: Partial<EjectionSettings>; readonly chunk: number },
  ): Generator<void, PreparedCluster, void> {
    // Checked in setCluster's order: the endpoints, the policy, the settings.
    const seen = new Set<string>();
    yield* inChunks(endpoints.length, options.chunk, (from, to) => {
      for (let i = from; i < to; i++) validateEndpoint(endpoints[i] as EngineEndpoint, seen);
    });
    validatePolicy(policy);
    const resolvedSafety = resolveSafety(this.safety, options.safety);
    const resolvedEjection = resolveEjection(this.ejection, options.ejection);
    yield;
    const existing = this.clusters.get(name);
    const prepared = { name, endpoints, policy, safety: options.safety, ejection: options.ejection, existing };
    // Other error-window settings: every state is rebuilt from its predecessor's history, which ticks change: at commit.
    const carry = existing?.ejection.errorWindowMs === resolvedEjection.errorWindowMs;
    const order: EndpointState[] = [];
    const persists: boolean[] = [];
    yield* inChunks(endpoints.length, options.chunk, (from, to) => {
      for (let i = from; i < to; i++) {
        const ep = endpoints[i] as EngineEndpoint;
        const e = carry ? existing?.byKey.get(ep.key) : undefined;
        persists.push(e !== undefined);
        order.push(e ?? this.newEndpoint(ep, policy, resolvedSafety, resolvedEjection));
      }
    });
    if (existing !== undefined && !carry) return { ...prepared, whole: true };
    yield;
    const keyed = yield* indexedSteps(order, endpoints, options.chunk);
    yield;
    const from = yield* carriedPositionSteps(order, existing?.index, options.chunk);
    yield;
    const layout = { order, ...keyed, ...localityLayout(endpoints.length, (i) => (endpoints[i] as EngineEndpoint).locality ?? '') };
    yield;
    return { ...prepared, whole: false, persists, layout, from, resolved: { safety: resolvedSafety, ejection: resolvedEjection } };
  }

  /** Installs a prepared cluster (prepareCluster); as setCluster with its arguments if the cluster changed meanwhile. */
  commitCluster(p: PreparedCluster): void {
    if (this.deferred(p.name, () => this.commitCluster(p))) return;
    if (p.whole || this.clusters.get(p.name) !== p.existing) {
      this.setCluster(p.name, p.endpoints, p.policy, p.safety, p.ejection);
      return;
    }
    const { safety, ejection } = p.resolved;
    const plan = this.planFor(p.existing, p.policy, safety);
    const latency = (): EwmaLatency => newPidLatency(safety);
    const ewma = (): EwmaLatency => newEwma(p.policy, safety);
    p.layout.order.forEach((e, i) => {
      if (p.persists[i] === true) refreshEndpoint(e, p.endpoints[i] as EngineEndpoint, plan.reset, latency, ewma);
    });
    this.install(p.name, p.existing, plan, p.layout, p.from, { policy: p.policy, safety, ejection });
  }

  /** What a new setting of a cluster restarts: the PID's state (gains or tick changed), the EWMA's. */
  private planFor(existing: ClusterState | undefined, policy: WeightingPolicy, safety: SafetySettings): ClusterPlan {
    const pidConfig = toPidConfig(policy);
    const ewmaKey = `${ewmaDecay(policy)}|${ewmaBonus(policy)}|${safety.tickMs}`;
    const reset = {
      pid: existing === undefined || JSON.stringify(existing.pidConfig) !== JSON.stringify(pidConfig) || existing.safety.tickMs !== safety.tickMs,
      ewma: existing === undefined || existing.ewmaKey !== ewmaKey,
    };
    return { pidConfig, ewmaKey, reset };
  }

  /**
   * The cluster's new state from its endpoint states in order (their fields already the new ones).
   * `from`: each endpoint's position in `existing` (carried-rows.ts); undefined when the order is
   * the existing one, endpoint for endpoint (keptIndex).
   */
  private install(
    name: string,
    existing: ClusterState | undefined,
    plan: ClusterPlan,
    layout: Pick<ClusterState, 'order' | 'byKey' | 'index' | 'keys' | 'statics' | 'groupOf' | 'groupCount'>,
    from: Int32Array | undefined,
    settings: { readonly policy: WeightingPolicy; readonly safety: SafetySettings; readonly ejection: EjectionSettings },
  ): void {
    const { policy } = settings;
    const safety = this.shared.share('safety', settings.safety);
    const params = this.pidParams(plan.pidConfig, safety.tickMs);
    // Without `from` the order is the existing one (keptIndex saw the keys in place, and
    // endpointState kept every state): nothing to check.
    // Before the rows: a joiner may resume an ejection (departed.ts), which the rows do not read.
    const departed = existing !== undefined && from !== undefined ? this.departures(existing, layout.order, from, settings.ejection) : existing?.departed;
    const { pidRows, held, errors } = existing !== undefined && (from === undefined || sameOrder(existing, layout.order, from))
      ? rowsInPlace(existing, layout.order, plan.reset.pid ? params : undefined)
      : carriedRows(existing, layout.order, from ?? carriedPositions(layout.order, existing?.index), plan.reset.pid, params);
    this.clusters.set(name, {
      name,
      policy,
      parts: this.shared.share('parts', policyParts(policy)),
      pidConfig: this.shared.share('pid', plan.pidConfig),
      pidRows,
      held,
      errors,
      // Conservative: rows carried from a cluster that had seen counts may hold some.
      errorsSeen: existing?.errorsSeen ?? false,
      // The states carry their flows (persisting endpoints, or a state rebuilt from its predecessor).
      stallCandidates: stallCandidatesOf(layout.order),
      draining: layout.order.reduce((n, e) => n + (e.drain !== undefined ? 1 : 0), 0),
      departed,
      errorPenalty: policy.kind === 'static' ? 0 : (policy.errorPenalty ?? DEFAULT_ERROR_PENALTY),
      ewmaKey: plan.ewmaKey,
      safety,
      ejection: this.shared.share('ejection', settings.ejection),
      ...layout,
      lastTickAt: existing?.lastTickAt,
      lastWeights: existing?.lastWeights,
      lastHealth: existing?.lastHealth,
      lastServing: undefined,
      lastFailStatic: existing?.lastFailStatic ?? false,
      dirty: true,
      // A frame is reset in place for any cluster of its size (newFrame): kept, the next ticks
      // of a written cluster allocate no new vectors.
      frames: existing !== undefined && existing.order.length === layout.order.length ? existing.frames : { last: undefined, spare: undefined },
    });
  }

  /**
   * Remembers the endpoints of `existing` that are not in `order` and had a back-off running, and
   * gives the joiners of `order` what the cluster remembers of their keys (departed.ts). The
   * cluster's memory, undefined while it has none.
   */
  private departures(existing: ClusterState, order: readonly EndpointState[], from: Int32Array, ejection: EjectionSettings): DepartedMemory | undefined {
    let memory = existing.departed;
    const leavers = leaversOf(existing.order, from);
    if (leavers.some((e) => e.ejection !== undefined || e.tracker !== undefined)) {
      memory ??= new DepartedMemory();
      memory.remember(leavers, this.clock, { ejectionMs: existing.ejection.maxEjectionMs, probeMs: this.healthOptions?.maxBackoffMs ?? HEALTH_DEFAULTS.maxBackoffMs });
    }
    if (memory !== undefined && memory.size > 0) resumeDeparted(memory, order, from, ejection, this.clock);
    return memory;
  }

  private endpointState(
    ep: EngineEndpoint,
    existing: ClusterState | undefined,
    policy: WeightingPolicy,
    safety: SafetySettings,
    ejection: EjectionSettings,
    reset: { pid: boolean; ewma: boolean },
  ): EndpointState {
    const e = existing?.byKey.get(ep.key);
    if (e === undefined || existing?.ejection.errorWindowMs !== ejection.errorWindowMs) {
      return this.newEndpoint(ep, policy, safety, ejection, e === undefined ? undefined : { state: e, reset });
    }
    refreshEndpoint(e, ep, reset, () => newPidLatency(safety), () => newEwma(policy, safety));
    return e;
  }

  /**
   * A fresh endpoint; `carry.state` (the same endpoint under other error-window settings) keeps its
   * health history and, unless `carry.reset` restarts them, its latency estimators: the new window
   * is about error counts (carryErrorRows starts them over), and an EWMA rebuilt with the state saw
   * every endpoint unmeasured again, its exploration bonus back at full, shifting traffic toward
   * the slowest (error-window-change.test.ts).
   */
  private newEndpoint(
    ep: EngineEndpoint,
    policy: WeightingPolicy,
    safety: SafetySettings,
    ejection: EjectionSettings,
    from?: { readonly state: EndpointState; readonly reset: ClusterPlan['reset'] },
  ): EndpointState {
    const carry = from?.state;
    return {
      key: ep.key,
      staticWeight: ep.weight,
      operatorHealth: ep.health,
      locality: ep.locality ?? '',
      capacity: ep.capacity,
      tracker: carry?.tracker,
      ewma: carry !== undefined && from?.reset.ewma === false ? carry.ewma : newEwma(policy, safety),
      latency: carry !== undefined && from?.reset.pid === false ? carry.latency : newPidLatency(safety),
      sample: carry?.sample,
      fieldAt: carry?.fieldAt,
      steerAt: carry?.steerAt,
      lastProbe: carry?.lastProbe,
      seeded: carry?.seeded ?? false,
      seededAt: carry?.seededAt,
      ejection: carry?.ejection,
      flow: carry?.flow,
      flowPrevInflight: carry?.flowPrevInflight ?? Number.NaN,
      // The weight to go back to is the PID's: not when its state starts over.
      drain: from?.reset.pid === false ? carry?.drain : undefined,
    };
  }

  removeCluster(name: string): boolean {
    if (this.deferred(name, () => this.clusters.delete(name))) return this.clusters.has(name);
    return this.clusters.delete(name);
  }

  hasCluster(name: string): boolean {
    return this.clusters.has(name);
  }

  /**
   * Restores previously published weights (e.g. persisted before a restart) so the first ticks
   * continue from them instead of sloshing traffic back to static weights. They are treated as
   * data from the first tick after seeding: held while reports resume, decayed toward static
   * only if none arrive within decayAfterMs. Unknown keys and non-positive values are ignored.
   */
  seedWeights(cluster: string, weights: ReadonlyMap<string, number>): void {
    if (this.deferred(cluster, () => this.seedWeights(cluster, weights))) return;
    const c = this.clusters.get(cluster);
    if (c === undefined) return;
    for (const [key, value] of weights) {
      const i = c.index.get(key);
      const e = i === undefined ? undefined : c.order[i];
      if (i === undefined || e === undefined || !(Number.isFinite(value) && value > 0)) continue;
      restoreHeldRow(c.held, i, value, value);
      setCell(c.pidRows.rows, i, PR_W, value);
      e.seeded = true;
      e.seededAt = undefined;
    }
    c.dirty = true;
  }

  /**
   * Records the latest sample (and folds its latency into the endpoint's estimators, its request
   * and error rates into its error window). Returns false, ignoring it, if the cluster or endpoint
   * is unknown or the sample is older than the latest. While the cluster's tick is in flight
   * (startClusterTick) the sample waits for it to complete, and true only means it was taken.
   */
  observeSample(cluster: string, endpointKey: string, sample: Sample): boolean {
    validateSample(sample);
    // Mid-tick, checked when applied (after the calls deferred before it, e.g. a new endpoint set).
    // The closure only when a tick is in flight: this runs for every sample of the fleet.
    if (this.flight !== undefined && this.deferred(cluster, () => this.observeSample(cluster, endpointKey, sample))) return true;
    const c = this.clusters.get(cluster);
    const i = c?.index.get(endpointKey);
    const e = i === undefined ? undefined : c?.order[i];
    if (c === undefined || i === undefined || e === undefined) return false;
    const taken = newerFields(e, sample);
    if (taken === undefined) return false;
    // Sources report different fields (Envoy's load reports: rps, errors and ORCA cpu; an agent:
    // cpu and latency; probes: nothing here). Merge them, so one source's sample does not erase
    // another's fields, and count as fresh data only what the policy steers on: a stream of
    // rps-only load reports must not keep a CPU-driven weight "fresh" after the CPU reports stopped.
    noteFieldTimes(e, taken);
    e.sample = mergedSample(e.sample, taken);
    noteSample(c.pidRows, i, e.sample);
    if (steersOn(c.policy, taken)) {
      e.steerAt = e.steerAt === undefined || taken.at > e.steerAt ? taken.at : e.steerAt;
      // The controller runs once per new one (tick/pid.ts).
      setCell(c.pidRows.rows, i, PR_PENDING, 1);
    }
    if (taken.latencyMs !== undefined) {
      e.ewma.observe(taken.latencyMs, taken.at);
      e.latency.observe(taken.latencyMs, taken.at);
    }
    if (noteFlow(c, e, taken)) this.alarms.add(cluster);
    // Samples without rps carry no error information (observeErrors ignores them).
    if (taken.rps !== undefined) {
      c.errorsSeen = true;
      const failing = allFailing(c, i);
      const outlying = outlierRate(c, i);
      observeErrors(c.errors, i, c.ejection.errorWindowMs, taken);
      // Newly failing (almost) all it is sent, or its window newly failing as much as an outlier
      // rule ejects at: an alarm, as for a stall (takeAlarms).
      const newly = (!failing && allFailing(c, i)) || (!outlying && outlierRate(c, i));
      if (newly && e.ejection?.until === undefined) this.alarms.add(cluster);
    }
    return true;
  }

  /**
   * Feeds a probe result to the endpoint's HealthTracker; undefined if the endpoint is unknown, or
   * while its cluster's tick is in flight (the probe then counts once that tick completes).
   */
  observeProbe(cluster: string, endpointKey: string, result: ProbeResult): HealthTransition | undefined {
    if (!Number.isFinite(result.at)) throw new RangeError(`probe.at must be finite, got ${result.at}`);
    if (this.deferred(cluster, () => this.observeProbe(cluster, endpointKey, result))) return undefined;
    const e = this.clusters.get(cluster)?.byKey.get(endpointKey);
    if (e === undefined) return undefined;
    e.lastProbe = result;
    e.tracker ??= new HealthTracker(this.healthOptions);
    const t = e.tracker.observe(result.ok, result.at);
    // Its probes just took it out: an alarm, as for a stall (takeAlarms).
    if (t.from === 'AVAILABLE' && t.to !== 'AVAILABLE') this.alarms.add(cluster);
    return t;
  }

  /**
   * Forgets what the cluster's probes said (each endpoint's HealthTracker and last probe): for a
   * cluster whose probe was taken off. Nothing probes its endpoints any more, so an endpoint the
   * probes had taken out would never earn its way back (RECOVERING needs successes), and a probe
   * nobody runs is missing data, which is not ill health.
   */
  forgetProbes(cluster: string): void {
    if (this.deferred(cluster, () => this.forgetProbes(cluster))) return;
    const c = this.clusters.get(cluster);
    for (const e of c?.order ?? []) {
      e.tracker = undefined;
      e.lastProbe = undefined;
    }
    c?.departed?.forgetProbes();
  }

  /**
   * Clears the cluster's newcomer marks (held-weights.ts forgetNewcomers): for a replica that takes
   * a cluster over with no state to import. Its marks are of endpoints added since it last ticked the
   * cluster, while another replica owned it and served them.
   */
  forgetNewcomers(cluster: string): void {
    if (this.deferred(cluster, () => this.forgetNewcomers(cluster))) return;
    const c = this.clusters.get(cluster);
    if (c !== undefined) forgetNewcomers(c.held);
  }

  /** The keys the cluster remembers of endpoints that left it with a back-off running, oldest departure first (departed.ts). */
  departedKeys(cluster: string): string[] {
    return this.clusters.get(cluster)?.departed?.keys() ?? [];
  }

  /** The integer weights published by the last tick (what to persist), if any. */
  publishedWeights(cluster: string): ReadonlyMap<string, number> | undefined {
    return this.clusters.get(cluster)?.lastWeights;
  }

  /**
   * The cluster's controller state as JSON (see cluster-export.ts), for a replica that takes the
   * cluster over; undefined for an unknown cluster or one that has not ticked yet.
   */
  exportClusterState(cluster: string): ExportedClusterState | undefined {
    this.settle();
    const c = this.clusters.get(cluster);
    return c === undefined ? undefined : exportCluster(c, this.clock);
  }

  /**
   * Continues a cluster from another engine's export: its next tick is anchored on the exported
   * published weights, so it moves no endpoint beyond the step limit, and it keeps the exporter's
   * ejections (cluster-export.ts). Returns the endpoints restored (0 for an unknown cluster).
   * `now`: this engine's time; exported times later than it (another process's clock running
   * ahead) are taken as `now`, and the ejections' remaining back-offs count from it (without it,
   * from the export's own time: the two engines share a clock).
   */
  importClusterState(cluster: string, state: ExportedClusterState, now?: number): number {
    this.settle();
    const c = this.clusters.get(cluster);
    return c === undefined ? 0 : importCluster(c, state, now);
  }

  /**
   * Ticks every cluster, or only those `only` accepts (a replica ticks the clusters it owns; the
   * others keep their state untouched until it owns them).
   */
  tick(now: number, only?: (cluster: string) => boolean): TickResult {
    this.beginTick(now);
    const clusters = new Map<string, ClusterTick>();
    for (const c of this.clusters.values()) if (only === undefined || only(c.name)) clusters.set(c.name, this.tickCluster(c, now));
    return { now, clusters };
  }

  /**
   * The clusters whose signals raised an alarm since the last call: an endpoint now looks stalled
   * on its own (tick/stall.ts), its latest report newly trips the all-failing rule or its error
   * window newly fails as much as an outlier rule ejects at (tick/ejection.ts; the peers' tests are the tick's),
   * its probes just took it out (balancing/health.ts), or a backlog drain became pending
   * (tick/backlog.ts). Each acts at the cluster's next tick; a caller that ticks it now
   * (tickClusters) acts on them up to a tick period sooner. An extra tick is an ordinary one at a
   * later `now`: the PID controller runs once per new sample however many ticks run (tick/pid.ts),
   * and the rules in time read `now`.
   */
  takeAlarms(): string[] {
    const names = [...this.alarms];
    this.alarms.clear();
    return names;
  }

  /** Whether some cluster's alarm waits for takeAlarms. */
  get alarmed(): boolean {
    return this.alarms.size > 0;
  }

  /**
   * Ticks the named clusters (unknown names are skipped), in the order given. A caller that must
   * not hold its event loop for a whole tick ticks the clusters in slices with the same `now`:
   * each cluster's result depends only on its own state, inputs and `now`, so slices give what
   * one `tick(now)` would have.
   */
  tickClusters(now: number, names: Iterable<string>): TickResult {
    this.beginTick(now);
    const clusters = new Map<string, ClusterTick>();
    for (const name of names) {
      const c = this.clusters.get(name);
      if (c !== undefined) clusters.set(name, this.tickCluster(c, now));
    }
    return { now, clusters };
  }

  /**
   * Starts one cluster's tick in steps of about `chunk` endpoints (a cluster of at most `chunk`
   * endpoints is one step): the caller runs `step()` until it returns true, yielding its event
   * loop between steps, then reads `result` (what `tickClusters(now, [name])` would have given).
   * Until then, calls that would change the cluster are deferred to its completion
   * (cluster-tick-run.ts); any other tick, export or import first completes it.
   */
  startClusterTick(now: number, name: string, chunk: number): ClusterTickRun {
    if (!Number.isFinite(now)) throw new RangeError(`now must be finite, got ${now}`);
    if (!(chunk > 0)) throw new RangeError(`chunk must be > 0, got ${chunk}`);
    this.beginTick(now);
    const c = this.clusters.get(name);
    let steps: Iterator<void, ClusterTick | undefined, void>;
    if (c === undefined) steps = [].values();
    else if (c.order.length <= chunk) steps = { next: () => ({ done: true, value: this.tickCluster(c, now) }) };
    else steps = this.tickSteps(c, now, chunk);
    const limit = 4 * (c?.order.length ?? 0) + 1_000;
    const run = new ClusterTickRun(name, steps, limit, (r) => {
      if (this.flight === r) this.flight = undefined;
    });
    if (c !== undefined) this.flight = run;
    return run;
  }

  /** The cluster's controller parameters: gains per tick (the seed's were tuned for one update per 1 s tick). */
  private pidParams(config: PidConfig, tickMs: number): PidParams {
    const options = { ...config.gains, timeUnitMs: tickMs };
    const key = JSON.stringify(options);
    let params = this.sharedPidParams.get(key);
    if (params === undefined) {
      // Bounded: settings are few, but a caller cycling gains must not grow this forever.
      if (this.sharedPidParams.size >= MAX_SHARED_PID_PARAMS) this.sharedPidParams.clear();
      params = pidParams(options);
      this.sharedPidParams.set(key, params);
    }
    return params;
  }

  /**
   * What every tick entry point does first: refuses a `now` that is not finite, completes the cluster
   * tick in flight, and moves the engine's time to `now` (never back: a slice ticked late with an
   * older one).
   */
  private beginTick(now: number): void {
    if (!Number.isFinite(now)) throw new RangeError(`now must be finite, got ${now}`);
    this.settle();
    if (now > this.clock) this.clock = now;
  }

  /** Completes the cluster tick in flight, if any. */
  private settle(): void {
    this.flight?.finish();
  }

  /** True (and `op` deferred) when `cluster`'s tick is in flight. */
  private deferred(cluster: string, op: () => void): boolean {
    if (this.flight?.cluster !== cluster) return false;
    this.flight.defer(op);
    return true;
  }

  private tickCluster(c: ClusterState, now: number): ClusterTick {
    const f = this.frameFor(c, now);
    runEjection(f, c.order, c.ejection, c);
    const sums = gateHealth(f, c.order, c.held);
    joinAndScale(f, c.order, c, sums);
    const setpoint = runController(c, f);
    clampAll(f, c.safety, c);
    return this.finishTick(c, f, publish(c, f, this.resolution), setpoint);
  }

  /**
   * tickCluster in steps: the same stages, each per-endpoint pass resumed by ranges of `chunk`
   * endpoints with a yield between (tickCluster keeps its plain calls: a generator per stage cost
   * ~10% of a tick of 500 × 20).
   */
  private *tickSteps(c: ClusterState, now: number, chunk: number): Generator<void, ClusterTick, void> {
    const f = this.frameFor(c, now);
    yield* runEjectionSteps(f, c.order, c.ejection, c, chunk);
    yield;
    const sums = yield* gateHealthSteps(f, c.order, c.held, chunk);
    yield;
    yield* joinAndScaleSteps(f, c.order, c, sums, chunk);
    yield;
    const setpoint = yield* runControllerSteps(c, f, chunk);
    yield;
    clampAll(f, c.safety, c);
    return this.finishTick(c, f, yield* publishSteps(c, f, this.resolution, chunk), setpoint);
  }

  private frameFor(c: ClusterState, now: number): Frame {
    const dt = c.lastTickAt === undefined ? c.safety.tickMs : Math.max(0, now - c.lastTickAt);
    const freshMs = readingWindowMs(c.safety);
    const spare = c.frames.spare;
    // The common case (the cluster's frame from two ticks ago) without a FrameInit per cluster per tick.
    if (spare !== undefined && spare.n === c.order.length) return recycleFrame(spare, now, dt, freshMs, c.policy.kind, c, this.scratch);
    return newFrame({ n: c.order.length, now, dt, freshMs, policy: c.policy.kind, keys: c.keys, statics: c.statics, scratch: this.scratch });
  }

  private finishTick(c: ClusterState, f: Frame, out: Published, setpoint: number | undefined): ClusterTick {
    this.remember(c, f, out.weights, out.health);
    return { weights: out.weights, health: out.health, changed: out.changed, explanations: new TickExplanations(f, c.index), failStatic: f.failStatic, setpoint };
  }

  private remember(c: ClusterState, f: Frame, weights: ReadonlyMap<string, number>, health: ReadonlyMap<string, PublishedHealth>): void {
    // publish() has set each endpoint's wasServing and, for a pure PID policy (or failing static), its pidW.
    if (c.parts.pid > 0 && c.parts.pid < 1 && !f.failStatic) boundPidVector(c, f.serving);
    f.weights = weights;
    f.health = health;
    c.lastTickAt = f.now;
    c.lastWeights = weights;
    c.lastHealth = health;
    c.lastServing = f.serving;
    // The frame before this one is free again (its tick's explanations are two ticks old).
    c.frames.spare = c.frames.last;
    c.frames.last = f;
    c.lastFailStatic = f.failStatic;
    c.dirty = false;
  }
}

/**
 * The existing cluster's key index, when `endpoints` have its keys in the same order and every
 * state persists (a weight, health or locality change). One endpoint write then builds no new
 * maps of the cluster's keys: they lived as long as the cluster, so each write promoted them to
 * the old generation.
 */
function keptIndex(
  existing: ClusterState | undefined,
  endpoints: readonly EngineEndpoint[],
  ejection: EjectionSettings,
): Pick<ClusterState, 'order' | 'byKey' | 'index' | 'keys'> | undefined {
  // Other error-window settings rebuild every state (endpointState): the order changes.
  if (existing === undefined || existing.ejection.errorWindowMs !== ejection.errorWindowMs || existing.order.length !== endpoints.length) return undefined;
  for (let i = 0; i < endpoints.length; i++) if ((existing.order[i] as EndpointState).key !== (endpoints[i] as EngineEndpoint).key) return undefined;
  const { order, byKey, index, keys } = existing;
  return { order, byKey, index, keys };
}

/** Whether `order` is `existing`'s order, state for state, each carried from its own position. */
function sameOrder(existing: ClusterState, order: readonly EndpointState[], from: Int32Array): boolean {
  if (existing.order.length !== order.length) return false;
  for (let i = 0; i < order.length; i++) if (existing.order[i] !== order[i] || from[i] !== i) return false;
  return true;
}

type Rows = Pick<ClusterState, 'pidRows' | 'held' | 'errors'>;

/** The rows of a cluster whose endpoints moved: copied to their new positions (new arrays). */
function carriedRows(existing: ClusterState | undefined, order: readonly EndpointState[], from: Int32Array, resetPid: boolean, params: PidParams): Rows {
  return { pidRows: carryPidRows(order, existing, from, resetPid, params), held: carryHeldWeights(order, existing, from), errors: carryErrorRows(order, existing, from) };
}

/**
 * The rows of a cluster whose endpoints stay where they were (a weight, health or locality
 * written): the existing arrays, kept. Copies of them were ~4 MB of typed arrays per write at 20k
 * endpoints, memory outside V8's heap that brings its next full collection closer (bench/RESULTS.md
 * "external22"). `resetPid`: the PID's new parameters, when its state restarts (new rows then).
 */
function rowsInPlace(existing: ClusterState, order: readonly EndpointState[], resetPid: PidParams | undefined): Rows {
  const pidRows = resetPid === undefined ? existing.pidRows : carryPidRows(order, existing, identity(order.length), true, resetPid);
  return { pidRows, held: keepHeldWeights(existing.held, existing.statics, order), errors: existing.errors };
}

function identity(n: number): Int32Array {
  const from = new Int32Array(n);
  for (let i = 0; i < n; i++) from[i] = i;
  return from;
}

/** The existing cluster's locality groups, when `endpoints` have its localities position by position. */
function keptGroups(existing: ClusterState | undefined, endpoints: readonly EngineEndpoint[]): Pick<ClusterState, 'groupOf' | 'groupCount'> | undefined {
  if (existing === undefined || existing.order.length !== endpoints.length) return undefined;
  for (let i = 0; i < endpoints.length; i++) if ((existing.order[i] as EndpointState).locality !== ((endpoints[i] as EngineEndpoint).locality ?? '')) return undefined;
  return { groupOf: existing.groupOf, groupCount: existing.groupCount };
}

/** Integer-conversion groups (localities) by position, and how many; `localityOf(i)`: the locality at position i. */
function localityLayout(count: number, localityOf: (i: number) => string): Pick<ClusterState, 'groupOf' | 'groupCount'> {
  const groupOf = new Array<number>(count).fill(0);
  const ids = new Map<string, number>();
  for (let i = 0; i < count; i++) {
    const locality = localityOf(i);
    let g = ids.get(locality);
    if (g === undefined) {
      g = ids.size;
      ids.set(locality, g);
    }
    groupOf[i] = g;
  }
  return { groupOf, groupCount: ids.size };
}

/** Blends: keeps the PID's own vector within floor and ceiling of its own scale. */
function boundPidVector(c: ClusterState, serving: number[]): void {
  const rows = c.pidRows.rows;
  let sw = 0;
  let ss = 0;
  c.order.forEach((e, i) => {
    const pidW = cell(rows, i, PR_W);
    if (!serving[i] || !isSet(pidW)) return;
    sw += pidW;
    ss += e.staticWeight;
  });
  if (!(ss > 0 && sw > 0)) return;
  const scale = sw / ss;
  c.order.forEach((e, i) => {
    const pidW = cell(rows, i, PR_W);
    if (!serving[i] || !isSet(pidW)) return;
    setCell(rows, i, PR_W, Math.min(Math.max(pidW, e.staticWeight * scale * c.safety.minWeightRatio), e.staticWeight * scale * c.safety.maxWeightRatio));
  });
}

function toPidConfig(policy: WeightingPolicy): PidConfig {
  if (policy.kind !== 'pid' && policy.kind !== 'blend') return { setpoint: 'mean', metric: DEFAULT_PID_METRIC, k: PID_ACTUATION_GAIN, gains: {} };
  return {
    setpoint: policy.setpoint ?? BLEND_PID_DEFAULTS.setpoint,
    metric: policy.metric ?? (policy.kind === 'blend' ? BLEND_PID_DEFAULTS.metric : DEFAULT_PID_METRIC),
    k: policy.actuationGain ?? PID_ACTUATION_GAIN,
    gains: { ...WEIGHTING_GAIN_DEFAULTS, ...policy.gains },
  };
}

/**
 * The weight update w ← w·exp(k·u) already accumulates the controller's output, so an integral
 * term is a second integrator: with the loop's ~1 s delay (LRS interval + tick + push) the seed's
 * ki 0.1 overshot and slowed convergence after a capacity step (bench/RESULTS.md, headline demo:
 * 10.5–12 s with ki 0.1, 7 s with ki 0). The PidController's own defaults stay the seed's.
 */
const WEIGHTING_GAIN_DEFAULTS = { ki: 0 } as const;

/**
 * The cluster's PID rows: an endpoint that stays (the same state object) keeps its row, moved to
 * its new position; new endpoints start fresh. With `reset` (changed controller settings) only
 * the PID's weight and a pending sample carry over; for an endpoint whose state was rebuilt
 * (carried by key: newEndpoint), only the weight. Gains are per tick: the seed's gains were tuned
 * for one update per 1 s tick.
 */
function carryPidRows(order: readonly EndpointState[], existing: ClusterState | undefined, from: Int32Array, reset: boolean, params: PidParams): PidRows {
  const p = newPidRows(params, order.length);
  for (let i = 0; i < order.length; i++) noteSample(p, i, (order[i] as EndpointState).sample);
  if (existing === undefined) return p;
  const old = existing.pidRows.rows;
  const runs = new RowRuns(old, p.rows, PID_ROW);
  for (let i = 0; i < order.length; i++) {
    const f = from[i] as number;
    if (f === NEW_ENDPOINT) continue;
    const same = existing.order[f] === order[i];
    if (same && !reset) {
      runs.row(f, i);
      continue;
    }
    setCell(p.rows, i, PR_W, cell(old, f, PR_W));
    if (same) setCell(p.rows, i, PR_PENDING, cell(old, f, PR_PENDING));
  }
  runs.flush();
  return p;
}

function newPidLatency(safety: SafetySettings): EwmaLatency {
  return new EwmaLatency({ referenceIntervalMs: safety.tickMs, decay: PID_LATENCY_DECAY, explorationScale: 0 });
}

function ewmaDecay(policy: WeightingPolicy): number | undefined {
  return policy.kind === 'ewma' || policy.kind === 'blend' ? policy.decay : undefined;
}

function ewmaBonus(policy: WeightingPolicy): number | undefined {
  return policy.kind === 'ewma' || policy.kind === 'blend' ? policy.explorationBonus : undefined;
}

function newEwma(policy: WeightingPolicy, safety: SafetySettings): EwmaLatency {
  const decay = ewmaDecay(policy);
  const bonus = ewmaBonus(policy);
  return new EwmaLatency({
    referenceIntervalMs: safety.tickMs,
    ...(decay !== undefined ? { decay } : {}),
    ...(bonus !== undefined ? { explorationScale: bonus } : {}),
  });
}

/** A cluster prepared by WeightEngine.prepareCluster for commitCluster (opaque to callers). */
export type PreparedCluster = {
  readonly name: string;
  readonly endpoints: readonly EngineEndpoint[];
  readonly policy: WeightingPolicy;
  readonly safety: Partial<SafetySettings> | undefined;
  readonly ejection: Partial<EjectionSettings> | undefined;
  /** The cluster's state it was prepared against: committed as setCluster if it is no longer the one. */
  readonly existing: ClusterState | undefined;
} & (
  | { readonly whole: true }
  | {
      readonly whole: false;
      /** Per position: the state is the existing one (its declared fields set at commit). */
      readonly persists: readonly boolean[];
      readonly layout: Pick<ClusterState, 'order' | 'byKey' | 'index' | 'keys' | 'statics' | 'groupOf' | 'groupCount'>;
      /** Per position: where the endpoint is in the existing order (carried-rows.ts). */
      readonly from: Int32Array;
      readonly resolved: { readonly safety: SafetySettings; readonly ejection: EjectionSettings };
    }
);

/** What setCluster restarts and keys on (planFor). */
interface ClusterPlan {
  readonly pidConfig: PidConfig;
  readonly ewmaKey: string;
  readonly reset: { readonly pid: boolean; readonly ewma: boolean };
}

/** A persisting endpoint's new declared fields; the controller's own state restarts with reset.pid too (carryPidRows). */
function refreshEndpoint(e: EndpointState, ep: EngineEndpoint, reset: ClusterPlan['reset'], latency: () => EwmaLatency, ewma: () => EwmaLatency): void {
  // A changed static weight rejoins at the new fair share (carryHeldWeights).
  e.staticWeight = ep.weight;
  e.operatorHealth = ep.health;
  // The kept string when equal: the caller's is new on every write and would live on in the state.
  const locality = ep.locality ?? '';
  if (e.locality !== locality) e.locality = locality;
  e.capacity = ep.capacity;
  if (reset.pid) e.latency = latency();
  if (reset.ewma) e.ewma = ewma();
}

/**
 * A cluster's endpoints by key, their positions, keys and static weights, in one pass: at 20k
 * endpoints the four maps over `order` made 40k [key, value] pairs and two arrays more for the
 * collector, inside the task that sets the cluster (bench/admin-100k.ts, issue 13). In one go:
 * indexedSteps does it in steps.
 */
function indexed(order: readonly EndpointState[]): Pick<ClusterState, 'byKey' | 'index' | 'keys' | 'statics'> {
  return runToEnd(indexedSteps(order, undefined, Number.POSITIVE_INFINITY));
}

/** The cluster's key index, `chunk` endpoints per step; `declared` (its endpoints in order): static weights from there, not from the states (prepareCluster). */
function* indexedSteps(order: readonly EndpointState[], declared: readonly EngineEndpoint[] | undefined, chunk: number): Generator<void, Pick<ClusterState, 'byKey' | 'index' | 'keys' | 'statics'>, void> {
  const byKey = new Map<string, EndpointState>();
  const index = new Map<string, number>();
  // Pushed, not preallocated: the tick reads these arrays, and a preallocated one stays holey.
  const keys: string[] = [];
  const statics: number[] = [];
  yield* inChunks(order.length, chunk, (from, to) => {
    for (let i = from; i < to; i++) {
      const e = order[i] as EndpointState;
      byKey.set(e.key, e);
      index.set(e.key, i);
      keys.push(e.key);
      statics.push(declared === undefined ? e.staticWeight : (declared[i] as EngineEndpoint).weight);
    }
  });
  return { byKey, index, keys, statics };
}
