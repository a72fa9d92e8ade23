/**
 * Explanations, built on demand. A tick over 10,000 endpoints would otherwise allocate
 * 10,000 explanation objects nobody reads; instead the tick keeps a snapshot of its
 * per-endpoint numbers in typed arrays and `TickExplanations` (a ReadonlyMap) turns one
 * row into an `Explanation` when asked. The snapshot is immutable after the tick, so a
 * result read later still describes its own tick.
 */
import type { HealthState } from '../health.js';
import {
  SAFETY_RULES,
  type Explanation,
  type Freshness,
  type PolicyKind,
  type PublishedHealth,
  type Sample,
  type SafetyRule,
} from './types.js';

export const FRESHNESS_CODES = ['fresh', 'stale', 'expired', 'none'] as const satisfies readonly Freshness[];
export const HEALTH_CODES = ['AVAILABLE', 'UNAVAILABLE', 'RECOVERING', 'OPERATOR_DISABLED'] as const satisfies readonly (
  | HealthState
  | 'OPERATOR_DISABLED'
)[];

export function ruleBit(rule: SafetyRule): number {
  return 1 << SAFETY_RULES.indexOf(rule);
}

const ruleLists = new Map<number, readonly SafetyRule[]>();

/** The rules in a bit mask, in stage order (memoized: few combinations occur). */
export function rulesOf(mask: number): readonly SafetyRule[] {
  let list = ruleLists.get(mask);
  if (list === undefined) {
    list = Object.freeze(SAFETY_RULES.filter((_, b) => (mask & (1 << b)) !== 0));
    ruleLists.set(mask, list);
  }
  return list;
}

export const FAIL_STATIC_NOTE =
  'fail static: no eligible endpoint passed the health gate, so all are published HEALTHY at static weights';

export interface TickSnapshot {
  readonly policy: PolicyKind;
  readonly keys: readonly string[];
  readonly statics: number[];
  readonly healthCode: number[];
  readonly serving: number[];
  readonly freshness: number[];
  /** NaN: no data. */
  readonly age: number[];
  readonly fair: number[];
  readonly prevPub: number[];
  readonly raw: number[];
  readonly cand: number[];
  readonly pub: number[];
  readonly rules: number[];
  /** NaN: no utilization (not steered by the PID). */
  util: number[] | undefined;
  pid:
    | {
        /** NaN: no PID step yet. */
        readonly setpoint: number[];
        readonly measurement: number[];
        readonly error: number[];
        readonly p: number[];
        readonly i: number[];
        readonly d: number[];
        readonly output: number[];
        readonly multiplier: number[];
        readonly updated: number[];
      }
    | undefined;
  ewma:
    | {
        /** NaN: no estimate. */
        readonly estimate: number[];
        readonly bonus: number[];
        readonly samples: number[];
        readonly weight: number[];
      }
    | undefined;
  readonly samples: readonly (Sample | undefined)[];
  readonly probeLatency: readonly (number | undefined)[];
  weights: ReadonlyMap<string, number>;
  health: ReadonlyMap<string, PublishedHealth>;
  readonly failStatic: boolean;
}

/**
 * A zero-filled array. Plain arrays, not typed arrays: a tick allocates a few dozen per cluster
 * and, with 500 small clusters, typed arrays' separate backing stores cost more than the work.
 */
export function zeros(n: number): number[] {
  return new Array<number>(n).fill(0);
}

const num = (x: number | undefined): number | undefined => (x === undefined || Number.isNaN(x) ? undefined : x);

export class TickExplanations implements ReadonlyMap<string, Explanation> {
  constructor(
    private readonly snap: TickSnapshot,
    private readonly index: ReadonlyMap<string, number>,
  ) {}

  get size(): number {
    return this.snap.keys.length;
  }

  has(key: string): boolean {
    return this.index.has(key);
  }

  get(key: string): Explanation | undefined {
    const i = this.index.get(key);
    return i === undefined ? undefined : this.build(i);
  }

  forEach(callback: (value: Explanation, key: string, map: ReadonlyMap<string, Explanation>) => void, thisArg?: unknown): void {
    for (const [k, v] of this) callback.call(thisArg, v, k, this);
  }

  *entries(): MapIterator<[string, Explanation]> {
    for (let i = 0; i < this.snap.keys.length; i++) yield [this.snap.keys[i] as string, this.build(i)];
  }

  *keys(): MapIterator<string> {
    yield* this.snap.keys;
  }

  *values(): MapIterator<Explanation> {
    for (let i = 0; i < this.snap.keys.length; i++) yield this.build(i);
  }

  [Symbol.iterator](): MapIterator<[string, Explanation]> {
    return this.entries();
  }

  private build(i: number): Explanation {
    const s = this.snap;
    const key = s.keys[i] as string;
    const sample = s.samples[i];
    const serving = s.serving[i] === 1;
    const pid = s.pid;
    const ewma = s.ewma;
    const hasPid = pid !== undefined && !Number.isNaN(pid.setpoint[i] as number);
    return {
      policy: s.policy,
      health: s.health.get(key) as PublishedHealth,
      healthState: HEALTH_CODES[s.healthCode[i] as number] as HealthState | 'OPERATOR_DISABLED',
      freshness: FRESHNESS_CODES[s.freshness[i] as number] as Freshness,
      sampleAgeMs: num(s.age[i]),
      inputs: {
        utilization: num(s.util?.[i]),
        cpu: sample?.cpu,
        inflight: sample?.inflight,
        latencyMs: sample?.latencyMs,
        errors: sample?.errors,
        rps: sample?.rps,
        probeLatencyMs: s.probeLatency[i],
      },
      pid: hasPid
        ? {
            setpoint: pid.setpoint[i] as number,
            measurement: pid.measurement[i] as number,
            error: pid.error[i] as number,
            p: pid.p[i] as number,
            i: pid.i[i] as number,
            d: pid.d[i] as number,
            output: pid.output[i] as number,
            multiplier: pid.multiplier[i] as number,
            updated: pid.updated[i] === 1,
          }
        : undefined,
      ewma:
        ewma !== undefined && serving
          ? {
              estimateMs: num(ewma.estimate[i]),
              bonusMs: ewma.bonus[i] as number,
              samples: ewma.samples[i] as number,
              weight: ewma.weight[i] as number,
            }
          : undefined,
      staticWeight: s.statics[i] as number,
      fairWeight: s.fair[i] as number,
      previousWeight: s.prevPub[i] as number,
      rawWeight: serving ? (s.raw[i] as number) : (s.fair[i] as number),
      weight: serving ? (s.cand[i] as number) : (s.fair[i] as number),
      publishedWeight: s.pub[i] as number,
      integerWeight: s.weights.get(key) as number,
      rules: rulesOf(s.rules[i] as number),
      notes: s.failStatic && serving ? [FAIL_STATIC_NOTE] : [],
    };
  }
}
