/**
 * The weight engine: per cluster, per tick, policy + samples + probe results → the integer
 * weight and health to publish for every endpoint, with an explanation of each.
 *
 * Pure and deterministic: no I/O, no clock. Time arrives as `now` (ms) in `tick` and as the
 * `at` of samples and probe results; the same calls in the same order give the same output.
 *
 * Stages, per cluster, in the order they run:
 *
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
 *     Only endpoints with fresh data are steered; the others keep their weight here.
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
 * being explored without the bonus alone (1/1 ms) sending it 20× the traffic.
 *
 * Blend: each part yields a share vector over the serving endpoints; the target is the
 * fraction-weighted sum of shares. In a blend the PID keeps its own weight vector (bounded
 * by floor and ceiling), since the published weights are no longer its alone.
 *
 * Explanations are built on demand from a per-tick snapshot (explanations.ts), so a tick
 * over 10,000 endpoints does not allocate 10,000 objects nobody reads.
 */
import { EwmaLatency } from '../ewma.js';
import { HealthTracker, type HealthTransition } from '../health.js';
import { toIntegerWeightGroups } from '../integer-weights.js';
import { PidController, type PidStep } from '../pid.js';
import { TickExplanations, type TickSnapshot, FRESHNESS_CODES, HEALTH_CODES, ruleBit, zeros } from './explanations.js';
import {
  clampToBounds,
  classifyFreshness,
  decayToward,
  isOperatorDisabled,
  policyParts,
  resolveSafety,
  stepLimit,
  exceedsHysteresis,
  utilizations,
  validateEndpoints,
  validatePolicy,
  validateSample,
  type ResolvedParts,
} from './stages.js';
import {
  BLEND_PID_DEFAULTS,
  DEFAULT_INTEGER_RESOLUTION,
  PID_ACTUATION_GAIN,
  type ClusterTick,
  type EngineEndpoint,
  type OperatorHealth,
  type ProbeResult,
  type PublishedHealth,
  type Sample,
  type SafetySettings,
  type TickResult,
  type UtilizationMetric,
  type WeightEngineOptions,
  type WeightingPolicy,
} from './types.js';

/** Keeps the arbitrary weight scale within sane floating-point range. */
const SCALE_MIN = 1e-6;
const SCALE_MAX = 1e6;

const R_OPERATOR = ruleBit('operator-unhealthy');
const R_PROBE = ruleBit('probe-unhealthy');
const R_FAIL_STATIC = ruleBit('fail-static');
const R_JOINED = ruleBit('joined');
const R_AWAITING = ruleBit('awaiting-sample');
const R_EXPLORATION = ruleBit('exploration');
const R_STALE = ruleBit('stale-hold');
const R_DECAY = ruleBit('decay');
const R_STEP = ruleBit('step-limit');
const R_FLOOR = ruleBit('floor');
const R_CEILING = ruleBit('ceiling');
const R_HYSTERESIS = ruleBit('hysteresis-hold');

const F_FRESH = FRESHNESS_CODES.indexOf('fresh');
const F_STALE = FRESHNESS_CODES.indexOf('stale');
const F_EXPIRED = FRESHNESS_CODES.indexOf('expired');
const F_NONE = FRESHNESS_CODES.indexOf('none');
const H_DISABLED = HEALTH_CODES.indexOf('OPERATOR_DISABLED');

interface PidConfig {
  readonly setpoint: 'mean' | number;
  readonly metric: UtilizationMetric;
  readonly k: number;
  readonly gains: { kp?: number; ki?: number; kd?: number };
}

interface EndpointState {
  readonly key: string;
  staticWeight: number;
  operatorHealth: OperatorHealth | undefined;
  locality: string;
  capacity: number | undefined;
  readonly tracker: HealthTracker;
  pid: PidController;
  /** The last PID step and what went with it (kept for explanations while awaiting a sample). */
  pidStep: PidStep | undefined;
  pidSetpoint: number;
  pidMeasurement: number;
  pidMultiplier: number;
  /** `at` of the sample the PID last consumed. */
  lastControlAt: number | undefined;
  ewma: EwmaLatency;
  /** Every field's latest value, merged across sources. */
  sample: Sample | undefined;
  /** When a field the policy steers on last arrived: the freshness reference. */
  steerAt: number | undefined;
  /** Counts samples carrying a steering field (the controller runs once per new one). */
  sampleSeq: number;
  usedSeq: number;
  lastProbe: ProbeResult | undefined;
  /** Internal weight (static units × scale); undefined while not serving. */
  w: number | undefined;
  /** Weight published (real); the step limit's anchor. */
  pub: number | undefined;
  /** PID's own weight vector entry (blends only; equals w for a pure PID policy). */
  pidW: number | undefined;
  wasServing: boolean;
  /** seedWeights() was called and no sample has arrived yet. */
  seeded: boolean;
  /** First tick after seeding: the reference time for freshness until the first sample. */
  seededAt: number | undefined;
}

interface ClusterState {
  readonly name: string;
  readonly policy: WeightingPolicy;
  readonly parts: ResolvedParts;
  readonly pidConfig: PidConfig;
  readonly ewmaKey: string;
  readonly safety: SafetySettings;
  readonly order: readonly EndpointState[];
  readonly byKey: ReadonlyMap<string, EndpointState>;
  readonly index: ReadonlyMap<string, number>;
  readonly keys: readonly string[];
  readonly statics: number[];
  /** Integer-conversion groups (localities): group of each endpoint and its position in it. */
  readonly groupOf: number[];
  readonly posInGroup: number[];
  readonly groupSizes: readonly number[];
  lastTickAt: number | undefined;
  lastWeights: Map<string, number> | undefined;
  lastHealth: Map<string, PublishedHealth> | undefined;
  lastServing: number[] | undefined;
  lastFailStatic: boolean;
  /** Set by setCluster/seedWeights: forces a publish on the next tick. */
  dirty: boolean;
}

function definedFields(sample: Sample): Partial<Sample> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(sample)) if (v !== undefined) out[k] = v as number;
  return out as Partial<Sample>;
}

/** Whether a sample carries a field the policy's controller reads. */
function steersOn(policy: WeightingPolicy, s: Sample): boolean {
  const has = (k: 'cpu' | 'inflight' | 'latencyMs'): boolean => s[k] !== undefined;
  const pid = (metric: string | undefined): boolean =>
    metric === 'inflight' ? has('inflight') : metric === 'max' ? has('cpu') || has('inflight') : has('cpu');
  switch (policy.kind) {
    case 'static':
      return false;
    case 'pid':
      return pid(policy.metric);
    case 'ewma':
      return has('latencyMs');
    case 'blend':
      return ((policy.parts.pid ?? 0) > 0 && pid(policy.metric ?? 'cpu')) || ((policy.parts.ewma ?? 0) > 0 && has('latencyMs'));
  }
}

export class WeightEngine {
  private readonly clusters = new Map<string, ClusterState>();
  private readonly safety: Partial<SafetySettings>;
  private readonly healthOptions: WeightEngineOptions['health'];
  private readonly resolution: number;

  constructor(options: WeightEngineOptions = {}) {
    resolveSafety(options.safety); // validate early
    this.safety = { ...options.safety };
    this.healthOptions = options.health;
    new HealthTracker(options.health); // validate early
    this.resolution = options.integerResolution ?? DEFAULT_INTEGER_RESOLUTION;
    if (!Number.isInteger(this.resolution) || this.resolution < 1) throw new RangeError('integerResolution must be an integer >= 1');
  }

  /**
   * Creates or replaces a cluster. Endpoints that persist (same key) keep their health history,
   * controller state and weight; policy changes keep the weights (no traffic slosh) and let the
   * step limit carry the cluster to the new policy's targets. A changed static weight makes the
   * endpoint rejoin at its new fair share. `safety` overrides the engine's settings.
   */
  setCluster(name: string, endpoints: readonly EngineEndpoint[], policy: WeightingPolicy, safety?: Partial<SafetySettings>): void {
    validateEndpoints(endpoints);
    validatePolicy(policy);
    const resolvedSafety = resolveSafety(this.safety, safety);
    const parts = policyParts(policy);
    const pidConfig = toPidConfig(policy);
    const ewmaKey = `${ewmaDecay(policy)}|${ewmaBonus(policy)}|${resolvedSafety.tickMs}`;
    const existing = this.clusters.get(name);
    const pidChanged =
      existing === undefined ||
      JSON.stringify(existing.pidConfig) !== JSON.stringify(pidConfig) ||
      existing.safety.tickMs !== resolvedSafety.tickMs;
    const ewmaChanged = existing === undefined || existing.ewmaKey !== ewmaKey;

    const n = endpoints.length;
    const order: EndpointState[] = [];
    const byKey = new Map<string, EndpointState>();
    const index = new Map<string, number>();
    const statics = zeros(n);
    const groupOf = zeros(n);
    const posInGroup = zeros(n);
    const groupIds = new Map<string, number>();
    const groupSizes: number[] = [];
    endpoints.forEach((ep, i) => {
      let e = existing?.byKey.get(ep.key);
      if (e === undefined) {
        e = {
          key: ep.key,
          staticWeight: ep.weight,
          operatorHealth: ep.health,
          locality: ep.locality ?? '',
          capacity: ep.capacity,
          tracker: new HealthTracker(this.healthOptions),
          pid: newPid(pidConfig, resolvedSafety),
          pidStep: undefined,
          pidSetpoint: 0,
          pidMeasurement: 0,
          pidMultiplier: 1,
          lastControlAt: undefined,
          ewma: newEwma(policy, resolvedSafety),
          sample: undefined,
          steerAt: undefined,
          sampleSeq: 0,
          usedSeq: 0,
          lastProbe: undefined,
          w: undefined,
          pub: undefined,
          pidW: undefined,
          wasServing: false,
          seeded: false,
          seededAt: undefined,
        };
      } else {
        if (e.staticWeight !== ep.weight) e.wasServing = false; // rejoin at the new fair share
        e.staticWeight = ep.weight;
        e.operatorHealth = ep.health;
        e.locality = ep.locality ?? '';
        e.capacity = ep.capacity;
        if (pidChanged) {
          e.pid = newPid(pidConfig, resolvedSafety);
          e.pidStep = undefined;
          e.lastControlAt = undefined;
        }
        if (ewmaChanged) e.ewma = newEwma(policy, resolvedSafety);
      }
      order.push(e);
      byKey.set(ep.key, e);
      index.set(ep.key, i);
      statics[i] = ep.weight;
      let g = groupIds.get(e.locality);
      if (g === undefined) {
        g = groupSizes.length;
        groupIds.set(e.locality, g);
        groupSizes.push(0);
      }
      groupOf[i] = g;
      posInGroup[i] = groupSizes[g] as number;
      groupSizes[g] = (groupSizes[g] as number) + 1;
    });
    this.clusters.set(name, {
      name,
      policy,
      parts,
      pidConfig,
      ewmaKey,
      safety: resolvedSafety,
      order,
      byKey,
      index,
      keys: order.map((e) => e.key),
      statics,
      groupOf,
      posInGroup,
      groupSizes,
      lastTickAt: existing?.lastTickAt,
      lastWeights: existing?.lastWeights,
      lastHealth: existing?.lastHealth,
      lastServing: undefined,
      lastFailStatic: existing?.lastFailStatic ?? false,
      dirty: true,
    });
  }

  removeCluster(name: string): boolean {
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
    const c = this.clusters.get(cluster);
    if (c === undefined) return;
    for (const [key, value] of weights) {
      const e = c.byKey.get(key);
      if (e === undefined || !(Number.isFinite(value) && value > 0)) continue;
      e.w = e.pub = e.pidW = value;
      e.wasServing = true;
      e.seeded = true;
      e.seededAt = undefined;
    }
    c.dirty = true;
  }

  /**
   * Records the latest sample (and folds its latency into the endpoint's EWMA). Returns false,
   * ignoring it, if the cluster or endpoint is unknown or the sample is older than the latest.
   */
  observeSample(cluster: string, endpointKey: string, sample: Sample): boolean {
    validateSample(sample);
    const c = this.clusters.get(cluster);
    const e = c?.byKey.get(endpointKey);
    if (c === undefined || e === undefined) return false;
    if (e.sample !== undefined && sample.at < e.sample.at) return false;
    // Sources report different fields (Envoy's load reports: rps and ORCA cpu; an agent: cpu and
    // latency; probes: nothing here). Merge them, so one source's sample does not erase another's
    // fields, and count as fresh data only what the policy steers on: a stream of rps-only load
    // reports must not keep a CPU-driven weight "fresh" after the CPU reports stopped.
    e.sample = { ...e.sample, ...definedFields(sample), at: sample.at };
    if (steersOn(c.policy, sample)) {
      e.steerAt = sample.at;
      e.sampleSeq++;
    }
    if (sample.latencyMs !== undefined) e.ewma.observe(sample.latencyMs, sample.at);
    return true;
  }

  /** Feeds a probe result to the endpoint's HealthTracker; undefined if the endpoint is unknown. */
  observeProbe(cluster: string, endpointKey: string, result: ProbeResult): HealthTransition | undefined {
    if (!Number.isFinite(result.at)) throw new RangeError(`probe.at must be finite, got ${result.at}`);
    const e = this.clusters.get(cluster)?.byKey.get(endpointKey);
    if (e === undefined) return undefined;
    e.lastProbe = result;
    return e.tracker.observe(result.ok, result.at);
  }

  /** The integer weights published by the last tick (what to persist), if any. */
  publishedWeights(cluster: string): ReadonlyMap<string, number> | undefined {
    return this.clusters.get(cluster)?.lastWeights;
  }

  tick(now: number): TickResult {
    if (!Number.isFinite(now)) throw new RangeError(`now must be finite, got ${now}`);
    const clusters = new Map<string, ClusterTick>();
    for (const c of this.clusters.values()) clusters.set(c.name, this.tickCluster(c, now));
    return { now, clusters };
  }

  private tickCluster(c: ClusterState, now: number): ClusterTick {
    const s = c.safety;
    const dt = c.lastTickAt === undefined ? s.tickMs : Math.max(0, now - c.lastTickAt);
    const eps = c.order;
    const n = eps.length;
    const rules = zeros(n);

    // 1. Health gate.
    const healthCode = zeros(n);
    const serving = zeros(n);
    let eligible = 0;
    let servingCount = 0;
    for (let i = 0; i < n; i++) {
      const e = eps[i] as EndpointState;
      if (isOperatorDisabled(e.operatorHealth)) {
        healthCode[i] = H_DISABLED;
        rules[i] = R_OPERATOR;
        continue;
      }
      eligible++;
      const st = e.tracker.state(now);
      healthCode[i] = HEALTH_CODES.indexOf(st);
      if (st === 'AVAILABLE') {
        serving[i] = 1;
        servingCount++;
      } else rules[i] = R_PROBE;
    }
    const failStatic = eligible > 0 && servingCount === 0;
    if (failStatic) {
      for (let i = 0; i < n; i++) {
        if (healthCode[i] === H_DISABLED) continue;
        serving[i] = 1;
        rules[i] = R_FAIL_STATIC;
      }
    }

    // 2. Scale and joiners.
    let sumW = 0;
    let sumS = 0;
    for (let i = 0; i < n; i++) {
      const e = eps[i] as EndpointState;
      if (serving[i] && e.wasServing && e.w !== undefined) {
        sumW += e.w;
        sumS += e.staticWeight;
      }
    }
    let scale = sumS > 0 ? sumW / sumS : 1;
    if (!(scale >= SCALE_MIN && scale <= SCALE_MAX)) {
      // Only ratios matter: bring the numbers back to static units.
      for (const e of eps) {
        if (e.w !== undefined) e.w /= scale;
        if (e.pub !== undefined) e.pub /= scale;
        if (e.pidW !== undefined) e.pidW /= scale;
      }
      scale = 1;
    }
    const fair = zeros(n);
    for (let i = 0; i < n; i++) {
      const e = eps[i] as EndpointState;
      const f = e.staticWeight * scale;
      fair[i] = f;
      if (!serving[i]) {
        e.w = e.pidW = undefined;
        e.pub = f;
      } else if (failStatic || !e.wasServing || e.w === undefined) {
        e.w = e.pub = e.pidW = f;
        e.pid.reset();
        e.pidStep = undefined;
        e.lastControlAt = undefined;
        if (!failStatic) rules[i] = (rules[i] as number) | R_JOINED;
      }
    }

    // Freshness. Seeded weights (restored after a restart) count as data from the first tick
    // after seeding, so they are held, not decayed, while the reports resume.
    const freshness = zeros(n);
    const age = zeros(n);
    for (let i = 0; i < n; i++) {
      const e = eps[i] as EndpointState;
      if (e.seeded && e.steerAt === undefined && e.seededAt === undefined) e.seededAt = now;
      const ref = e.steerAt ?? (e.seeded ? e.seededAt : undefined);
      if (ref === undefined) {
        age[i] = Number.NaN;
        freshness[i] = F_NONE;
      } else {
        const a = now > ref ? now - ref : 0;
        age[i] = a;
        freshness[i] = a <= s.staleAfterMs ? F_FRESH : a <= s.decayAfterMs ? F_STALE : F_EXPIRED;
      }
    }

    const prevW = zeros(n);
    const prevPub = zeros(n);
    let anchorSum = 0;
    for (let i = 0; i < n; i++) {
      const e = eps[i] as EndpointState;
      prevPub[i] = e.pub as number;
      if (serving[i]) {
        prevW[i] = e.w as number;
        anchorSum += e.w as number;
      }
    }

    // 3. Controller.
    const snap: TickSnapshot = {
      policy: c.policy.kind,
      keys: c.keys,
      statics: c.statics,
      healthCode,
      serving,
      freshness,
      age,
      fair,
      prevPub,
      raw: zeros(n),
      cand: zeros(n),
      pub: zeros(n),
      rules,
      util: undefined,
      pid: undefined,
      ewma: undefined,
      samples: eps.map((e) => e.sample),
      probeLatency: eps.map((e) => e.lastProbe?.latencyMs),
      weights: undefined as unknown as Map<string, number>,
      health: undefined as unknown as Map<string, PublishedHealth>,
      failStatic,
    };
    const raw = snap.raw;
    let setpoint: number | undefined;
    if (failStatic) {
      for (let i = 0; i < n; i++) raw[i] = serving[i] ? (fair[i] as number) : 0;
    } else {
      const vectors: { f: number; x: number[] }[] = [];
      if (c.parts.pid > 0) {
        setpoint = this.runPid(c, snap);
        const x = zeros(n);
        for (let i = 0; i < n; i++) if (serving[i]) x[i] = eps[i]?.pidW as number;
        vectors.push({ f: c.parts.pid, x });
      }
      if (c.parts.ewma > 0) vectors.push({ f: c.parts.ewma, x: this.runEwma(c, now, snap, prevW) });
      if (c.parts.static > 0) vectors.push({ f: c.parts.static, x: fair });
      if (vectors.length === 1) {
        // A pure policy's vector already sums to anchorSum over the serving endpoints.
        const x = (vectors[0] as { x: number[] }).x;
        for (let i = 0; i < n; i++) if (serving[i]) raw[i] = x[i] as number;
      } else {
        for (const { f, x } of vectors) {
          let sx = 0;
          for (let i = 0; i < n; i++) if (serving[i]) sx += x[i] as number;
          if (!(sx > 0)) continue;
          const m = (f * anchorSum) / sx;
          for (let i = 0; i < n; i++) if (serving[i]) raw[i] = (raw[i] as number) + (x[i] as number) * m;
        }
      }
    }

    // 4–6. Freshness override, step limit, floor/ceiling.
    const cand = snap.cand;
    const adaptive = c.parts.static < 1 && !failStatic;
    const pureEwma = c.parts.ewma === 1;
    const ratio = s.maxStepRatio;
    for (let i = 0; i < n; i++) {
      if (!serving[i]) continue;
      let r = rules[i] as number;
      let w = raw[i] as number;
      const f = fair[i] as number;
      if (adaptive) {
        const fr = freshness[i];
        if (fr === F_STALE) {
          w = prevW[i] as number;
          r |= R_STALE;
        } else if (fr === F_EXPIRED || (fr === F_NONE && !pureEwma)) {
          const before = prevW[i] as number;
          w = decayToward(before, f, dt, s.decayHalfLifeMs);
          if (Math.abs(before / f - 1) > 1e-9) r |= R_DECAY;
        }
      }
      if (!failStatic) {
        const limited = stepLimit(w, prevPub[i] as number, ratio);
        if (limited.fired) r |= R_STEP;
        w = limited.value;
      }
      const bounded = clampToBounds(w, f, s.minWeightRatio, s.maxWeightRatio);
      if (bounded.rule === 'floor') r |= R_FLOOR;
      else if (bounded.rule === 'ceiling') r |= R_CEILING;
      w = bounded.value;
      cand[i] = w;
      rules[i] = r;
    }

    // 7. Hysteresis.
    const last = c.lastServing;
    let healthChanged = last === undefined || last.length !== n || c.lastHealth === undefined;
    if (!healthChanged) for (let i = 0; i < n && !healthChanged; i++) if (last?.[i] !== serving[i]) healthChanged = true;
    const structural = c.dirty || healthChanged || c.lastWeights === undefined || failStatic !== c.lastFailStatic;
    let publish = structural;
    if (!publish) publish = exceedsHysteresis(cand, prevPub, s.hysteresis, serving);
    const pub = snap.pub;
    for (let i = 0; i < n; i++) {
      const e = eps[i] as EndpointState;
      if (serving[i]) {
        e.w = cand[i] as number;
        if (publish) e.pub = e.w;
        else if (e.w !== prevPub[i]) rules[i] = (rules[i] as number) | R_HYSTERESIS;
      }
      pub[i] = e.pub as number;
    }

    // 8. Integers and health.
    const weights = publish || c.lastWeights === undefined ? this.toIntegers(c, pub) : c.lastWeights;
    let changed = healthChanged || weights.size !== c.lastWeights?.size;
    if (!changed && weights !== c.lastWeights) {
      for (const [k, v] of weights) {
        if (c.lastWeights?.get(k) !== v) {
          changed = true;
          break;
        }
      }
    }
    let health: Map<string, PublishedHealth>;
    if (!healthChanged && c.lastHealth !== undefined) health = c.lastHealth;
    else {
      health = new Map();
      for (let i = 0; i < n; i++) health.set(c.keys[i] as string, serving[i] ? 'HEALTHY' : 'UNHEALTHY');
    }

    // Controller state follow-up.
    const syncPid = c.parts.pid === 1 || failStatic;
    for (let i = 0; i < n; i++) {
      const e = eps[i] as EndpointState;
      e.wasServing = serving[i] === 1;
      if (serving[i] && syncPid) e.pidW = e.w;
    }
    if (c.parts.pid > 0 && !syncPid) boundPidVector(c, serving);

    snap.weights = weights;
    snap.health = health;
    c.lastTickAt = now;
    c.lastWeights = weights;
    c.lastHealth = health;
    c.lastServing = serving;
    c.lastFailStatic = failStatic;
    c.dirty = false;
    return { weights, health, changed, explanations: new TickExplanations(snap, c.index), failStatic, setpoint };
  }

  /** Runs the PID part: updates pidW of the steered endpoints, fills the snapshot, returns the setpoint. */
  private runPid(c: ClusterState, snap: TickSnapshot): number | undefined {
    const eps = c.order;
    const n = eps.length;
    const cfg = c.pidConfig;
    const util = zeros(n).fill(Number.NaN);
    snap.util = util;
    const steered: number[] = [];
    let sumU = 0;
    if (cfg.metric === 'cpu') {
      for (let i = 0; i < n; i++) {
        const cpu = eps[i]?.sample?.cpu;
        if (!snap.serving[i] || snap.freshness[i] !== F_FRESH || cpu === undefined) continue;
        util[i] = cpu;
        steered.push(i);
        sumU += cpu;
      }
    } else {
      const idx: number[] = [];
      for (let i = 0; i < n; i++) if (snap.serving[i] && snap.freshness[i] === F_FRESH && eps[i]?.sample !== undefined) idx.push(i);
      const us = utilizations(
        cfg.metric,
        idx.map((i) => {
          const e = eps[i] as EndpointState;
          return { sample: e.sample as Sample, staticWeight: e.staticWeight, capacity: e.capacity };
        }),
      );
      for (let j = 0; j < idx.length; j++) {
        const u = us[j];
        if (u === undefined) continue;
        const i = idx[j] as number;
        util[i] = u;
        steered.push(i);
        sumU += u;
      }
    }
    const pid = {
      setpoint: zeros(n).fill(Number.NaN),
      measurement: zeros(n),
      error: zeros(n),
      p: zeros(n),
      i: zeros(n),
      d: zeros(n),
      output: zeros(n),
      multiplier: zeros(n),
      updated: zeros(n),
    };
    snap.pid = pid;
    if (steered.length === 0) return undefined;
    const setpoint = cfg.setpoint === 'mean' ? sumU / steered.length : cfg.setpoint;

    // Multiplicative update, then renormalize the steered endpoints to their previous sum.
    let prevSum = 0;
    let newSum = 0;
    const targets = zeros(steered.length);
    for (let j = 0; j < steered.length; j++) {
      const i = steered[j] as number;
      const e = eps[i] as EndpointState;
      const pidW = e.pidW as number;
      prevSum += pidW;
      let t = pidW;
      if (e.sampleSeq > e.usedSeq) {
        const sample = e.sample as Sample;
        // A gap longer than staleAfterMs means the controller's history no longer describes the endpoint.
        if (e.lastControlAt !== undefined && sample.at - e.lastControlAt > c.safety.staleAfterMs) e.pid.reset();
        const step = e.pid.update({ setpoint, measurement: util[i] as number, now: sample.at });
        e.pidStep = step;
        e.pidSetpoint = setpoint;
        e.pidMeasurement = util[i] as number;
        e.pidMultiplier = Math.exp(cfg.k * step.output);
        e.lastControlAt = sample.at;
        e.usedSeq = e.sampleSeq;
        pid.updated[i] = 1;
        t = pidW * e.pidMultiplier;
      } else {
        snap.rules[i] = (snap.rules[i] as number) | R_AWAITING;
      }
      targets[j] = t;
      newSum += t;
      const step = e.pidStep;
      if (step !== undefined) {
        pid.setpoint[i] = e.pidSetpoint;
        pid.measurement[i] = e.pidMeasurement;
        pid.error[i] = step.error;
        pid.p[i] = step.p;
        pid.i[i] = step.i;
        pid.d[i] = step.d;
        pid.output[i] = step.output;
        pid.multiplier[i] = e.pidMultiplier;
      }
    }
    const m = newSum > 0 ? prevSum / newSum : 1;
    for (let j = 0; j < steered.length; j++) (eps[steered[j] as number] as EndpointState).pidW = (targets[j] as number) * m;
    return setpoint;
  }

  /** Runs the EWMA part: a vector over the endpoints (prevW for the ones it does not steer). */
  private runEwma(c: ClusterState, now: number, snap: TickSnapshot, prevW: number[]): number[] {
    const eps = c.order;
    const n = eps.length;
    const x = zeros(n);
    const expl = {
      estimate: zeros(n).fill(Number.NaN),
      bonus: zeros(n),
      samples: zeros(n),
      weight: zeros(n),
    };
    snap.ewma = expl;
    const steered: number[] = [];
    let maxMeasured = 0;
    for (let i = 0; i < n; i++) {
      if (!snap.serving[i]) continue;
      x[i] = prevW[i] as number;
      const ewma = (eps[i] as EndpointState).ewma;
      const weight = ewma.weight();
      expl.estimate[i] = ewma.estimate ?? Number.NaN;
      expl.bonus[i] = ewma.bonus();
      expl.samples[i] = ewma.samples;
      expl.weight[i] = weight;
      if (ewma.samples === 0) {
        steered.push(i);
        continue;
      }
      const latencyAge = Math.max(0, now - (ewma.lastSampleAt as number));
      if (classifyFreshness(latencyAge, c.safety) !== 'fresh') continue;
      steered.push(i);
      if (weight > maxMeasured) maxMeasured = weight;
    }
    if (steered.length === 0) return x;
    let prevSum = 0;
    let newSum = 0;
    const targets = zeros(steered.length);
    for (let j = 0; j < steered.length; j++) {
      const i = steered[j] as number;
      const e = eps[i] as EndpointState;
      let r = expl.weight[i] as number;
      if (e.ewma.samples === 0) {
        r = maxMeasured > 0 ? Math.min(r, maxMeasured) : 1;
        snap.rules[i] = (snap.rules[i] as number) | R_EXPLORATION;
      }
      const t = e.staticWeight * r;
      targets[j] = t;
      newSum += t;
      prevSum += prevW[i] as number;
    }
    const m = newSum > 0 ? prevSum / newSum : 1;
    for (let j = 0; j < steered.length; j++) x[steered[j] as number] = (targets[j] as number) * m;
    return x;
  }

  private toIntegers(c: ClusterState, pub: number[]): Map<string, number> {
    const n = pub.length;
    const groups: number[][] = c.groupSizes.map((size) => new Array<number>(size));
    for (let i = 0; i < n; i++) (groups[c.groupOf[i] as number] as number[])[c.posInGroup[i] as number] = pub[i] as number;
    const ints = toIntegerWeightGroups(groups, { resolution: this.resolution });
    const out = new Map<string, number>();
    for (let i = 0; i < n; i++) out.set(c.keys[i] as string, (ints[c.groupOf[i] as number] as number[])[c.posInGroup[i] as number] as number);
    return out;
  }
}

/** Blends: keeps the PID's own vector within floor and ceiling of its own scale. */
function boundPidVector(c: ClusterState, serving: number[]): void {
  let sw = 0;
  let ss = 0;
  for (let i = 0; i < c.order.length; i++) {
    const e = c.order[i] as EndpointState;
    if (!serving[i] || e.pidW === undefined) continue;
    sw += e.pidW;
    ss += e.staticWeight;
  }
  if (!(ss > 0 && sw > 0)) return;
  const scale = sw / ss;
  for (let i = 0; i < c.order.length; i++) {
    const e = c.order[i] as EndpointState;
    if (!serving[i] || e.pidW === undefined) continue;
    e.pidW = clampToBounds(e.pidW, e.staticWeight * scale, c.safety.minWeightRatio, c.safety.maxWeightRatio).value;
  }
}

function toPidConfig(policy: WeightingPolicy): PidConfig {
  if (policy.kind !== 'pid' && policy.kind !== 'blend') return { setpoint: 'mean', metric: 'cpu', k: PID_ACTUATION_GAIN, gains: {} };
  return {
    setpoint: policy.setpoint ?? BLEND_PID_DEFAULTS.setpoint,
    metric: policy.metric ?? BLEND_PID_DEFAULTS.metric,
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

function newPid(cfg: PidConfig, safety: SafetySettings): PidController {
  // Gains per tick: the seed's gains were tuned for one update per 1 s tick.
  return new PidController({ ...cfg.gains, timeUnitMs: safety.tickMs });
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

