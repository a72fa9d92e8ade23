/**
 * Explanations, built on demand. A tick over 10,000 endpoints would otherwise allocate
 * 10,000 explanation objects nobody reads; instead the tick's Frame (tick/frame.ts) keeps
 * its per-endpoint numbers in arrays and `TickExplanations` (a ReadonlyMap) turns one
 * row into an `Explanation` when asked. The frame is not touched by the next tick, so a
 * result read later still describes its own tick, until the cluster's next-but-one tick recycles
 * the frame (tick/frame.ts); reading it after that throws rather than describing another tick.
 */
import type { HealthState } from '../health.js';
import { IndexedMap } from './indexed-map.js';
import { FRESHNESS_CODES, HEALTH_CODES, pidStepAt, type Frame } from './tick/frame.js';
import { SAFETY_RULES, type Explanation, type Freshness, type PublishedHealth, type SafetyRule } from './types.js';

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

const DISABLED_CODE = HEALTH_CODES.indexOf('OPERATOR_DISABLED');

/** A tick's endpoints by freshness, operator-disabled ones aside (any ReadonlyMap of explanations; a tick's without building them). */
export function freshnessCounts(explanations: ReadonlyMap<string, Explanation>): Record<Freshness, number> {
  if (explanations instanceof TickExplanations) return explanations.freshnessCounts();
  const out: Record<Freshness, number> = { fresh: 0, stale: 0, expired: 0, none: 0 };
  for (const e of explanations.values()) if (e.healthState !== 'OPERATOR_DISABLED') out[e.freshness]++;
  return out;
}

const num = (x: number | undefined): number | undefined => (x === undefined || Number.isNaN(x) ? undefined : x);

export class TickExplanations extends IndexedMap<Explanation> {
  private readonly generation: number;

  constructor(
    private readonly snap: Frame,
    index: ReadonlyMap<string, number>,
  ) {
    super(snap.keys, index);
    this.generation = snap.generation;
  }

  protected valueAt(i: number): Explanation {
    this.checkGeneration();
    return this.build(i);
  }

  /**
   * The endpoints by freshness, operator-disabled ones aside, read from the frame's codes: what a
   * scrape counts (freshnessCounts) without building an explanation per endpoint (~0.3 µs each,
   * 36 ms a scrape at 100k endpoints).
   */
  freshnessCounts(): Record<Freshness, number> {
    this.checkGeneration();
    const s = this.snap;
    const out: Record<Freshness, number> = { fresh: 0, stale: 0, expired: 0, none: 0 };
    for (let i = 0; i < this.keyList.length; i++) {
      if (s.healthCode[i] !== DISABLED_CODE) out[FRESHNESS_CODES[s.freshness[i] as number] as Freshness]++;
    }
    return out;
  }

  private checkGeneration(): void {
    if (this.snap.generation !== this.generation) {
      throw new Error('explanations read after their cluster ticked twice more (the engine reuses the frame): read a tick result before the next-but-one tick');
    }
  }

  private build(i: number): Explanation {
    const s = this.snap;
    const key = s.keys[i] as string;
    const serving = s.serving[i] === 1;
    const ejection = s.ejections?.[i];
    return {
      policy: s.policy,
      health: s.health.get(key) as PublishedHealth,
      healthState: HEALTH_CODES[s.healthCode[i] as number] as HealthState | 'OPERATOR_DISABLED',
      freshness: FRESHNESS_CODES[s.freshness[i] as number] as Freshness,
      sampleAgeMs: num(s.age[i]),
      inputs: this.inputs(i),
      pid: this.pid(i),
      ewma: this.ewma(i, serving),
      staticWeight: s.statics[i] as number,
      fairWeight: s.fair[i] as number,
      previousWeight: s.prevPub[i] as number,
      rawWeight: serving ? (s.raw[i] as number) : s.fair[i] as number,
      weight: serving ? (s.cand[i] as number) : s.fair[i] as number,
      publishedWeight: s.pub[i] as number,
      integerWeight: s.weights.get(key) as number,
      rules: rulesOf(s.rules[i] as number),
      ...(ejection !== undefined ? { ejection } : {}),
      notes: s.failStatic && serving ? [FAIL_STATIC_NOTE] : [],
    };
  }

  private inputs(i: number): Explanation['inputs'] {
    const s = this.snap;
    const sample = s.samples[i];
    return {
      utilization: num(s.util?.[i]),
      errorRate: num(s.errorRate[i]),
      cpu: sample?.cpu,
      inflight: sample?.inflight,
      latencyMs: sample?.latencyMs,
      errors: sample?.errors,
      rps: sample?.rps,
      probeLatencyMs: s.probeLatency[i],
    };
  }

  private pid(i: number): Explanation['pid'] {
    const pid = this.snap.pid;
    return pid === undefined ? undefined : pidStepAt(pid, i);
  }

  private ewma(i: number, serving: boolean): Explanation['ewma'] {
    const ewma = this.snap.ewma;
    if (ewma === undefined || !serving) return undefined;
    return {
      estimateMs: num(ewma.estimate[i]),
      bonusMs: ewma.bonus[i] as number,
      samples: ewma.samples[i] as number,
      weight: ewma.weight[i] as number,
    };
  }
}
