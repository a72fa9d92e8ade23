/**
 * Alarm ticks (weight-loop.ts, WeightEngine.takeAlarms): a load report showing an endpoint newly
 * stalled, newly failing as many requests as an outlier rule ejects at, or a backlog to drain, has
 * its cluster ticked within tens of milliseconds instead of at the next period, with the real
 * engine behind the loop.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { WeightEngine } from '../../src/balancing/engine/weight-engine.js';
import type { Sample } from '../../src/balancing/engine/types.js';
import type { Catalog } from '../../src/catalog/types.js';
import type { WeightOverrides } from '../../src/catalog/weight-overrides.js';
import type { SignalListener } from '../../src/signals/signal-store.js';
import { AdaptiveWeights } from '../../src/weights/adaptive-weights.js';
import { WeightLoop } from '../../src/weights/weight-loop.js';
import { cluster, endpoint } from '../catalog/helpers.js';

const PID = { kind: 'pid', setpoint: 'mean', metric: 'cpu' } as const;
const KEYS = ['10.0.0.1:8080', '10.0.0.2:8080', '10.0.0.3:8080', '10.0.0.4:8080'];
const catalogOf = (weighting: Catalog['clusters'][number]['weighting'] = PID): Catalog => ({
  clusters: [cluster('web', KEYS.map((k) => endpoint(k.split(':')[0] as string, 8080)), { weighting })],
  listeners: [],
  nodeGroups: [],
});

/** One endpoint's report over an interval: sent, answered and failed per second, in progress now. */
interface Flow {
  readonly rps: number;
  readonly successes: number;
  readonly inflight: number;
  readonly errors?: number;
}
const healthy: Flow = { rps: 40, successes: 40, inflight: 8 };

/** Samples as Envoy's load reports give them: each with its peers' in-progress and completions (over those that answer some). */
function samplesOf(flows: readonly Flow[], at: number): Sample[] {
  const answering = flows.filter((f) => f.successes > 0);
  const inflight = answering.reduce((s, f) => s + f.inflight, 0);
  const completions = answering.reduce((s, f) => s + f.successes, 0);
  return flows.map((f) => {
    const own = f.successes > 0 ? f : { inflight: 0, successes: 0 };
    return { at, cpu: 0.5, rps: f.rps, errors: f.errors ?? 0, successes: f.successes, inflight: f.inflight, peerInflight: inflight - own.inflight, peerCompletions: completions - own.successes };
  });
}

/** A loop over a real engine, its signals fed by the test, time faked. */
function fleet(catalog = catalogOf()) {
  const adaptive = new AdaptiveWeights(new WeightEngine());
  adaptive.setCatalog(catalog);
  const listeners = new Set<SignalListener>();
  const published: { at: number; overrides: WeightOverrides }[] = [];
  let alarms = 0;
  const loop = new WeightLoop({
    adaptive,
    signals: { subscribe: (l) => (listeners.add(l), () => void listeners.delete(l)) },
    archive: { loadWeights: () => new Map(), saveAllWeights: () => undefined },
    tickMs: 1_000,
    publish: (overrides) => void published.push({ at: Date.now(), overrides }),
    onAlarmTicked: () => void alarms++,
    now: () => Date.now(),
  });
  const report = (flows: readonly Flow[]): void => {
    samplesOf(flows, Date.now()).forEach((sample, i) => {
      for (const l of listeners) l({ kind: 'sample', cluster: 'web', key: KEYS[i] as string, sample });
    });
  };
  const healthOf = (key: string): string | undefined => published.at(-1)?.overrides.get('web')?.get(key)?.health;
  return { adaptive, loop, report, published, healthOf, alarms: () => alarms };
}

/** An endpoint failing half of what it is sent with a quick 503. */
const halfFailing: Flow = { rps: 40, successes: 20, errors: 20, inflight: 4 };

/** A hung endpoint 0 over `r` reports since it hung: sent its share, answering none, its requests piling up. */
const hung = (r: number): Flow => ({ rps: 40, successes: 0, inflight: 8 + 80 * r });

describe('an alarm tick', () => {
  beforeEach(() => vi.useFakeTimers({ now: 1_000_000 }));
  afterEach(() => vi.useRealTimers());

  /** Reports every 2 s for 6 s (ticks every second), then advances to 300 ms past a tick. */
  function warm(f: ReturnType<typeof fleet>): void {
    f.loop.start();
    for (let r = 0; r < 3; r++) {
      f.report([healthy, healthy, healthy, healthy]);
      vi.advanceTimersByTime(2_000);
    }
    vi.advanceTimersByTime(300);
  }

  it('takes a newly hung endpoint out within tens of milliseconds of the report, not at the next period', () => {
    const f = fleet();
    warm(f);
    f.report([hung(1), healthy, healthy, healthy]);
    f.report([hung(2), healthy, healthy, healthy]);
    const reported = Date.now();
    vi.advanceTimersByTime(100);
    expect(f.healthOf(KEYS[0] as string)).toBe('UNHEALTHY');
    expect((f.published.at(-1)?.at ?? 0) - reported).toBeLessThanOrEqual(50);
    expect(f.alarms()).toBeGreaterThanOrEqual(1);
    f.loop.stop();
  });

  it('takes an endpoint newly failing some of its requests out within tens of milliseconds of the report that shows it', () => {
    const f = fleet();
    warm(f);
    // Its error window (10 s) passes what the success-rate rule ejects at (10% past its peers' 0%)
    // some reports in; each report lands 300 ms past a periodic tick.
    let out: { by: string; afterMs: number } | undefined;
    for (let r = 0; r < 10 && out === undefined; r++) {
      f.report([halfFailing, healthy, healthy, healthy]);
      const reported = Date.now();
      vi.advanceTimersByTime(100);
      if (f.healthOf(KEYS[0] as string) === 'UNHEALTHY') out = { by: 'the report', afterMs: (f.published.at(-1)?.at ?? Number.NaN) - reported };
      vi.advanceTimersByTime(1_900);
      out ??= f.healthOf(KEYS[0] as string) === 'UNHEALTHY' ? { by: 'a periodic tick', afterMs: Number.NaN } : undefined;
    }
    expect(out?.by, 'taken out by an outlier rule').toBe('the report');
    expect(out?.afterMs).toBeLessThanOrEqual(50);
    expect(f.alarms()).toBe(1);
    f.loop.stop();
  });

  it('raises none for healthy reports, nor again for a hung endpoint already out', () => {
    const f = fleet();
    warm(f);
    expect(f.alarms()).toBe(0);
    f.report([hung(1), healthy, healthy, healthy]);
    f.report([hung(2), healthy, healthy, healthy]);
    vi.advanceTimersByTime(100);
    const after = f.alarms();
    f.report([hung(3), healthy, healthy, healthy]);
    vi.advanceTimersByTime(100);
    expect(f.alarms()).toBe(after);
    f.loop.stop();
  });

  it('ticks only the clusters this replica owns (another replica ticks the rest)', () => {
    const f = fleet();
    f.adaptive.setOwnership(() => false);
    warm(f);
    const before = f.published.length;
    f.report([hung(1), healthy, healthy, healthy]);
    f.report([hung(2), healthy, healthy, healthy]);
    vi.advanceTimersByTime(100);
    expect(f.alarms()).toBe(0);
    expect(f.published.length).toBe(before);
    f.loop.stop();
  });

  it('is not run once the loop stopped', () => {
    const f = fleet();
    warm(f);
    f.report([hung(1), healthy, healthy, healthy]);
    f.loop.stop();
    f.report([hung(2), healthy, healthy, healthy]);
    vi.advanceTimersByTime(2_000);
    expect(f.alarms()).toBe(0);
  });
});

describe('AdaptiveWeights.tickAlarmed', () => {
  it('ticks the owned alarmed clusters while their endpoints fit the budget; the rest wait for the period', () => {
    const two: Catalog = { ...catalogOf(), clusters: ['web', 'api'].map((name) => cluster(name, KEYS.map((k) => endpoint(k.split(':')[0] as string, 8080)), { weighting: PID })) };
    const a = new AdaptiveWeights(new WeightEngine());
    a.setCatalog(two);
    a.tick(1_000);
    const feed = (name: string, flows: readonly Flow[], at: number): void => samplesOf(flows, at).forEach((s, i) => a.observeSample(name, KEYS[i] as string, s));
    for (const name of ['web', 'api']) {
      feed(name, [healthy, healthy, healthy, healthy], 1_000);
      feed(name, [hung(1), healthy, healthy, healthy], 3_000);
    }
    expect(a.alarmed).toBe(true);
    const t = a.tickAlarmed(3_100, 4);
    expect([t.clusters, t.endpoints]).toEqual([1, 4]);
    expect(t.overrides?.get('web')?.get(KEYS[0] as string)?.health).toBe('UNHEALTHY');
    expect(t.overrides?.get('api')?.get(KEYS[0] as string)?.health).toBeUndefined();
    // Taken: the one left over is the periodic tick's.
    expect(a.alarmed).toBe(false);
    expect(a.tickAlarmed(3_200, 100).clusters).toBe(0);
  });
});

describe('WeightEngine.takeAlarms', () => {
  const engine = (policy: Parameters<WeightEngine['setCluster']>[2] = { kind: 'pid', setpoint: 'mean' }) => {
    const e = new WeightEngine();
    e.setCluster('web', KEYS.map((key) => ({ key, weight: 1 })), policy);
    return e;
  };
  const feed = (e: WeightEngine, flows: readonly Flow[], at: number): void => samplesOf(flows, at).forEach((s, i) => e.observeSample('web', KEYS[i] as string, s));

  it('a backlog to drain (a pid cluster): once, as it becomes pending', () => {
    const e = engine();
    feed(e, [healthy, healthy, healthy, healthy], 1_000);
    e.tick(1_000);
    expect(e.takeAlarms()).toEqual([]);
    // Sent 40, finished 20 a second, 60 in progress where its peers' time holds 4: a backlog.
    feed(e, [{ rps: 40, successes: 20, inflight: 60 }, healthy, healthy, healthy], 3_000);
    expect(e.alarmed).toBe(true);
    expect(e.takeAlarms()).toEqual(['web']);
    expect(e.alarmed).toBe(false);
  });

  it('a stall: once, as the endpoint starts looking stalled, not at each later report while it is not out yet', () => {
    const e = engine({ kind: 'static' });
    feed(e, [healthy, healthy, healthy, healthy], 1_000);
    feed(e, [hung(1), healthy, healthy, healthy], 3_000);
    feed(e, [hung(2), healthy, healthy, healthy], 5_000);
    expect(e.takeAlarms()).toEqual(['web']);
    feed(e, [hung(3), healthy, healthy, healthy], 7_000);
    expect(e.takeAlarms()).toEqual([]);
  });

  it('newly failing (almost) all it is sent: once, as it starts, and not while ejected', () => {
    const e = engine();
    const at = (t: number, errors: number) => KEYS.forEach((k, i) => e.observeSample('web', k, { at: t, rps: 40, errors: i === 0 ? errors : 0 }));
    at(1_000, 0);
    at(3_000, 2);
    expect(e.takeAlarms()).toEqual([]);
    at(5_000, 40);
    expect(e.takeAlarms()).toEqual(['web']);
    at(7_000, 40);
    expect(e.takeAlarms()).toEqual([]);
    e.tick(7_000);
    at(9_000, 1);
    at(11_000, 40);
    // Ejected at 7 s (all-failing): its reports while out raise none.
    expect(e.takeAlarms()).toEqual([]);
  });

  it('its error window newly failing as much as an outlier rule ejects at: once, as it crosses, not at each later report, and not while ejected', () => {
    const e = engine();
    const at = (t: number, errors: number) => KEYS.forEach((k, i) => e.observeSample('web', k, { at: t, rps: 40, errors: i === 0 ? errors : 0 }));
    at(1_000, 0);
    at(3_000, 0);
    const alarmedAt: number[] = [];
    for (let t = 5_000; t <= 21_000; t += 2_000) {
      at(t, 6);
      if (e.takeAlarms().length > 0) alarmedAt.push(t);
    }
    // 15% of its requests failing: the 10 s window passes 10% (success-rate's gap over peers failing none) at one report (not the first), and only then.
    expect(alarmedAt).toHaveLength(1);
    expect(alarmedAt[0]).toBeGreaterThan(5_000);
    e.tick(21_000);
    expect(e.tick(21_000).clusters.get('web')?.explanations.get(KEYS[0] as string)?.health).toBe('UNHEALTHY');
    // Ejected: back under the ratio and past it again while out raises none.
    for (let t = 23_000; t <= 41_000; t += 2_000) at(t, t < 33_000 ? 0 : 6);
    expect(e.takeAlarms()).toEqual([]);
  });

  it('taken out by its probes: once, as they take it out', () => {
    const e = engine();
    const probe = (t: number, ok: boolean) => e.observeProbe('web', KEYS[1] as string, { at: t, ok, latencyMs: 1 });
    for (let t = 1_000; t <= 3_000; t += 1_000) probe(t, true);
    expect(e.takeAlarms()).toEqual([]);
    const alarmedAt: number[] = [];
    for (let t = 4_000; t <= 12_000; t += 1_000) {
      probe(t, false);
      if (e.takeAlarms().length > 0) alarmedAt.push(t);
    }
    // At the failure that crossed the threshold (not the first), and only then.
    expect(alarmedAt).toHaveLength(1);
    expect(alarmedAt[0]).toBeGreaterThan(4_000);
  });

  it('none for a backlog in a cluster whose policy never drains (static)', () => {
    const e = engine({ kind: 'static' });
    feed(e, [healthy, healthy, healthy, healthy], 1_000);
    feed(e, [{ rps: 40, successes: 20, inflight: 60 }, healthy, healthy, healthy], 3_000);
    expect(e.takeAlarms()).toEqual([]);
  });
});
