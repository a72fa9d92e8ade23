/**
 * A world of endpoints whose inputs depend on their key only, never on their position in the
 * cluster: per key a profile (cpu, latency, request and error rates, probe outages, stalls, a
 * drain), fed identically to several engines whose clusters list the same keys in different
 * orders. What the engines publish per key can then be compared (churn-properties.test.ts).
 */
import fc from 'fast-check';
import { WeightEngine } from '../../../src/balancing/engine/weight-engine.js';
import type { ClusterTick, EngineEndpoint, Explanation, WeightingPolicy } from '../../../src/balancing/engine/types.js';

/** One endpoint's behaviour over the run, as functions of the tick number only. */
export interface Profile {
  readonly cpu: number;
  readonly latencyMs: number;
  readonly rps: number;
  /** Share of failed requests inside [errorFrom, errorTo). */
  readonly errorRate: number;
  readonly errorFrom: number;
  readonly errorTo: number;
  /** Reports every this many ticks (0: never reports). */
  readonly reportEvery: number;
  /** Probed every tick when set; probes fail inside [probeFailFrom, probeFailTo). */
  readonly probed: boolean;
  readonly probeFailFrom: number;
  readonly probeFailTo: number;
  /** Load reports with success counts; stalled (none answered, in progress growing) from stallFrom on. */
  readonly flows: boolean;
  readonly stallFrom: number;
  readonly weight: number;
  readonly locality: string;
  readonly drained: boolean;
}

/** Error rates from a few values, so that two endpoints often fail alike (ties). */
const ERROR_RATES = [0, 0, 0.05, 0.4, 1] as const;

export const profileArb: fc.Arbitrary<Profile> = fc.record({
  cpu: fc.constantFrom(0.2, 0.4, 0.55, 0.7, 0.9),
  latencyMs: fc.constantFrom(5, 20, 80),
  rps: fc.constantFrom(0, 40, 100),
  errorRate: fc.constantFrom(...ERROR_RATES),
  errorFrom: fc.integer({ min: 0, max: 20 }),
  errorTo: fc.integer({ min: 5, max: 40 }),
  reportEvery: fc.constantFrom(0, 1, 1, 1, 2, 3),
  probed: fc.boolean(),
  probeFailFrom: fc.integer({ min: 0, max: 30 }),
  probeFailTo: fc.integer({ min: 0, max: 40 }),
  flows: fc.boolean(),
  stallFrom: fc.constantFrom(1_000, 1_000, 8, 15),
  weight: fc.constantFrom(1, 1, 2, 5),
  locality: fc.constantFrom('a', 'a', 'b'),
  drained: fc.constantFrom(false, false, false, false, true),
});

export const POLICIES: readonly WeightingPolicy[] = [
  { kind: 'pid', setpoint: 'mean', metric: 'cpu' },
  { kind: 'pid', setpoint: 0.6, metric: 'cpu' },
  { kind: 'pid', setpoint: 'mean', metric: 'cpu-latency' },
  { kind: 'ewma' },
  { kind: 'blend', parts: { pid: 0.5, ewma: 0.3, static: 0.2 }, metric: 'cpu' },
  { kind: 'static' },
];

export const keyOf = (k: number): string => `10.1.0.${k}:80`;

/** The world: a pool of endpoints, each with its profile; `k` names endpoint k of the pool. */
export class World {
  constructor(readonly profiles: readonly Profile[]) {}

  /** Endpoint k, its static weight raised by `c.weightBump`, its drain flipped by `c.undrain` (a pod's readiness), moved to locality 'c' by `c.moved`. */
  endpoint(k: number, c: { weightBump?: number; undrain?: boolean; moved?: boolean } = {}, key = keyOf(k)): EngineEndpoint {
    const p = this.profiles[k] as Profile;
    const drained = p.drained !== (c.undrain ?? false);
    return { key, weight: p.weight + (c.weightBump ?? 0), locality: c.moved === true ? 'c' : p.locality, ...(drained ? { health: 'DRAINING' as const } : {}) };
  }

  /** Feeds tick t's samples and probes of the endpoints `ks` (pool numbers) to `engine`. */
  feed(engine: WeightEngine, ks: readonly number[], t: number): void {
    for (const k of ks) this.feedOne(engine, k, t);
  }

  /** Feeds endpoint k's samples and probes of tick t to `engine`, addressed to `key`. */
  feedOne(engine: WeightEngine, k: number, t: number, key = keyOf(k)): void {
    const p = this.profiles[k] as Profile;
    const at = t * 1_000;
    if (p.probed) engine.observeProbe('svc', key, { ok: !(t >= p.probeFailFrom && t < p.probeFailTo), at: at - 500, latencyMs: 3 });
    if (p.reportEvery === 0 || t % p.reportEvery !== 0) return;
    const failing = t >= p.errorFrom && t < p.errorTo ? p.errorRate : 0;
    const errors = p.rps * failing;
    const stalled = t >= p.stallFrom;
    const flow = p.flows
      ? { successes: stalled ? 0 : p.rps - errors, inflight: stalled ? 10 + 6 * (t - p.stallFrom) : 3, peerInflight: 4, peerCompletions: 80 }
      : {};
    engine.observeSample('svc', key, {
      at,
      // A key-dependent wobble: the same for the key in every engine, whatever its position.
      cpu: p.cpu + (((t * 7 + k * 3) % 5) - 2) * 0.02,
      latencyMs: p.latencyMs + ((t + k) % 3),
      ...(p.rps > 0 || p.flows ? { rps: p.rps, errors } : {}),
      ...flow,
    });
  }
}

/**
 * What must be equal per key between engines that differ only in their clusters' order: the
 * weight, the health and every field of the explanation, flattened to paths ("pid.output").
 */
export type KeyView = Readonly<Record<string, string | number | boolean | undefined>>;

/**
 * Rules marked on a comparison a sum's last bit can tip (sums over the endpoints in another order
 * differ there): hysteresis-hold marks a held weight that moved at all, floor and ceiling one at
 * its bound, peers-near-capacity an allowance below 1 (peers' mean cpu 4.5 / 6 = 0.75 exactly in
 * one order, a bit above in another). The weights themselves are compared to 1e-9.
 */
const BOUNDARY_RULES: ReadonlySet<string> = new Set(['hysteresis-hold', 'floor', 'ceiling', 'peers-near-capacity']);

/** Integers: largest-remainder rounding gives a tie's unit to the earlier position (integer-weights.ts). */
const INTEGER_FIELDS: ReadonlySet<string> = new Set(['tickWeight', 'integerWeight']);

/** The tick's outcome per key, sorted by key. */
export function viewOf(tick: ClusterTick | undefined): Record<string, KeyView> {
  const out: Record<string, KeyView> = {};
  if (tick === undefined) return out;
  for (const key of [...tick.weights.keys()].sort()) {
    const x = tick.explanations.get(key) as Explanation;
    const flat: Record<string, string | number | boolean | undefined> = { tickWeight: tick.weights.get(key), tickHealth: tick.health.get(key) };
    flatten({ ...x, rules: x.rules.filter((r) => !BOUNDARY_RULES.has(r)).join(','), notes: x.notes.join(';') }, '', flat);
    out[key] = flat;
  }
  return out;
}

function flatten(x: object, prefix: string, into: Record<string, string | number | boolean | undefined>): void {
  for (const [k, v] of Object.entries(x)) {
    if (v !== null && typeof v === 'object') flatten(v as object, `${prefix}${k}.`, into);
    else into[`${prefix}${k}`] = v as string | number | boolean | undefined;
  }
}

/**
 * Numbers within a relative 1e-9 (sums taken in another order differ in their last bits); everything
 * else exactly. `integers: false` leaves the integer weights out (see runRewrites).
 */
export function differences(a: Record<string, KeyView>, b: Record<string, KeyView>, integers = true): string[] {
  const out: string[] = [];
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  for (const key of keys) {
    const x = a[key];
    const y = b[key];
    if (x === undefined || y === undefined) {
      out.push(`${key}: only in ${x === undefined ? 'second' : 'first'}`);
      continue;
    }
    for (const field of new Set([...Object.keys(x), ...Object.keys(y)])) {
      if (!integers && INTEGER_FIELDS.has(field)) continue;
      const u = x[field];
      const v = y[field];
      if (typeof u === 'number' && typeof v === 'number') {
        if (INTEGER_FIELDS.has(field) ? Math.abs(u - v) > 1 : !near(u, v)) out.push(`${key}.${field}: ${u} vs ${v}`);
      } else if (u !== v) out.push(`${key}.${field}: ${String(u)} vs ${String(v)}`);
    }
  }
  return out;
}

function near(u: number, v: number): boolean {
  if (Number.isNaN(u) || Number.isNaN(v)) return Number.isNaN(u) && Number.isNaN(v);
  return Math.abs(u - v) <= 1e-9 * Math.max(1, Math.abs(u), Math.abs(v));
}

/** A deterministic permutation of `xs` from `seed` (Fisher–Yates over a small LCG). */
export function shuffled<T>(xs: readonly T[], seed: number): T[] {
  const out = [...xs];
  let s = seed >>> 0 || 1;
  for (let i = out.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1_103_515_245) + 12_345) >>> 0;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}
