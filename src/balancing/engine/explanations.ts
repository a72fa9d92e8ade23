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
import { at, FRESHNESS_CODES, HEALTH_CODES, type Frame } from './tick/frame.js';
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
      healthState: HEALTH_CODES[at(s.healthCode, i)] as HealthState | 'OPERATOR_DISABLED',
      freshness: FRESHNESS_CODES[at(s.freshness, i)] as Freshness,
      sampleAgeMs: num(s.age[i]),
      inputs: this.inputs(i),
      pid: this.pid(i),
      ewma: this.ewma(i, serving),
      staticWeight: at(s.statics, i),
      fairWeight: at(s.fair, i),
      previousWeight: at(s.prevPub, i),
      rawWeight: serving ? at(s.raw, i) : at(s.fair, i),
      weight: serving ? at(s.cand, i) : at(s.fair, i),
      publishedWeight: at(s.pub, i),
      integerWeight: s.weights.get(key) as number,
      rules: rulesOf(at(s.rules, i)),
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
    if (pid === undefined || Number.isNaN(at(pid.setpoint, i))) return undefined;
    return {
      setpoint: at(pid.setpoint, i),
      measurement: at(pid.measurement, i),
      error: at(pid.error, i),
      p: at(pid.p, i),
      i: at(pid.i, i),
      d: at(pid.d, i),
      output: at(pid.output, i),
      multiplier: at(pid.multiplier, i),
      updated: pid.updated[i] === 1,
    };
  }

  private ewma(i: number, serving: boolean): Explanation['ewma'] {
    const ewma = this.snap.ewma;
    if (ewma === undefined || !serving) return undefined;
    return {
      estimateMs: num(ewma.estimate[i]),
      bonusMs: at(ewma.bonus, i),
      samples: at(ewma.samples, i),
      weight: at(ewma.weight, i),
    };
  }
}
