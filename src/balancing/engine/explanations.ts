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
    if (this.snap.generation !== this.generation) {
      throw new Error('explanations read after their cluster ticked twice more (the engine reuses the frame): read a tick result before the next-but-one tick');
    }
    return this.build(i);
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
