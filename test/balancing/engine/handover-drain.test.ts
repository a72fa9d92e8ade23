/**
 * A hand-over mid-drain (cluster-export.ts, tick/backlog.ts): an endpoint drained on the last
 * owner goes back to the controller's weight on the new owner's first report without a backlog,
 * as it would have had the owner not changed.
 */
import { describe, expect, it } from 'vitest';
import { WeightEngine } from '../../../src/balancing/engine/weight-engine.js';
import type { ExportedClusterState, ExportedEndpoint } from '../../../src/balancing/engine/index.js';
import { reanchored } from '../../../src/ha/weight-share.js';
import type { Sample } from '../../../src/balancing/engine/types.js';

const KEYS = ['a:1', 'b:1', 'c:1', 'd:1'];
const POLICY = { kind: 'pid', setpoint: 'mean', metric: 'cpu' } as const;

/** One Envoy's load report for an endpoint: sent and finished per second, in progress now, and its peers' in progress and completions. */
const report = (sent: number, finished: number, inflight: number): Partial<Sample> => ({ rps: sent, successes: finished, errors: 0, inflight, peerInflight: 20, peerCompletions: 120 });
/** `a`'s report with a backlog: cpu stopped at 1, sent 48 a second and finished 36, 40 in progress (34 past what its throughput holds). */
const BACKLOG: Partial<Sample> = { cpu: 1, ...report(48, 36, 40) };

const engine = (): WeightEngine => {
  const e = new WeightEngine({});
  e.setCluster('svc', KEYS.map((key) => ({ key, weight: 1 })), POLICY);
  return e;
};

/** Every endpoint reports cpu 0.7 and a steady flow at `at`, but `a`, which reports `a`. */
const reportAll = (e: WeightEngine, at: number, a: Partial<Sample>): void => {
  for (const key of KEYS) e.observeSample('svc', key, { at, cpu: 0.7, ...report(30, 30, 5), ...(key === 'a:1' ? a : {}) });
};

/** The shares the tick at `now` publishes, by key, and `a`'s rules. */
const tick = (e: WeightEngine, now: number): { shares: Map<string, number>; share: number; rules: readonly string[] } => {
  const t = e.tick(now).clusters.get('svc');
  const ws = KEYS.map((k) => t?.weights.get(k) ?? 0);
  const sum = ws.reduce((x, y) => x + y, 0);
  const shares = new Map(KEYS.map((k, i) => [k, (ws[i] as number) / sum]));
  return { shares, share: shares.get('a:1') as number, rules: t?.explanations.get('a:1')?.rules ?? [] };
};

/** Ticks of 1 s to 10 s with reports every 2 s, as Envoy's: balanced at a quarter each. */
const settle = (e: WeightEngine): void => {
  for (let t = 1_000; t <= 10_000; t += 1_000) {
    if (t % 2_000 === 0) reportAll(e, t, {});
    tick(e, t);
  }
};

/** The owner's export as etcd holds it (JSON). */
const exported = (e: WeightEngine): ExportedClusterState => JSON.parse(JSON.stringify(e.exportClusterState('svc'))) as ExportedClusterState;

/** A new replica continuing from `state` at its own `now`. */
const successor = (state: ExportedClusterState, now: number): WeightEngine => {
  const next = engine();
  next.importClusterState('svc', state, now);
  return next;
};

/** `owner` and `twin` fed alike, `a` drained on both at 12 s and held at 13 s: `a`'s share drained. */
function drainedAt13(): { owner: WeightEngine; twin: WeightEngine; drained: Map<string, number> } {
  const [owner, twin] = [engine(), engine()];
  let drained = new Map<string, number>();
  for (const e of [owner, twin]) {
    settle(e);
    reportAll(e, 12_000, BACKLOG);
    expect(tick(e, 12_000).rules).toContain('backlog-drain');
    drained = tick(e, 13_000).shares;
  }
  return { owner, twin, drained };
}

/**
 * From 14 s (`from`: the shares published at 13 s), ticks of 1 s to `until` and every 2 s reports
 * without a backlog, each endpoint's load following the share it was last published (120 requests
 * a second, cpu 0.7 at a quarter): `a`'s share in each engine after each tick. `offsets`: each
 * engine's clock, ms off the world's.
 */
function after(engines: readonly WeightEngine[], from: Map<string, number>, offsets: readonly number[] = [], until = 30_000): number[][] {
  return engines.map((e, k) => {
    const out: number[] = [];
    const skew = offsets[k] ?? 0;
    let shares = from;
    for (let t = 14_000; t <= until; t += 1_000) {
      if (t % 2_000 === 0) {
        for (const key of KEYS) {
          const s = shares.get(key) as number;
          e.observeSample('svc', key, { at: t + skew, cpu: 2.8 * s, ...report(120 * s, 120 * s, 20 * s) });
        }
      }
      const x = tick(e, t + skew);
      shares = x.shares;
      out.push(x.share);
    }
    return out;
  });
}

/** The drain `e` exports for `a`, if any. */
const drainOf = (e: WeightEngine): unknown => e.exportClusterState('svc')?.endpoints['a:1']?.drain;

/** The drain a successor exports for `a` after its first tick at `now` (no sample since the import: the controller does not run). */
const importedDrain = (next: WeightEngine, now: number): unknown => (next.tick(now), drainOf(next));

describe('a hand-over mid-drain', () => {
  for (const [what, skew] of [['the same clock', 0], ['a clock 10 minutes ahead', 600_000], ['a clock 10 minutes behind', -600_000]] as const) {
    it(`the new owner (${what}) takes the endpoint back to the controller's weight on its first report without a backlog, as the old owner does`, () => {
      const { owner, twin, drained } = drainedAt13();
      const state = exported(owner);
      // Under way: its way back and its report's age, not the share already read.
      expect(state.endpoints['a:1']?.drain).toEqual({ back: expect.any(Number) as unknown, reportMsAgo: 1_000 });
      expect(state.endpoints['a:1']?.drain?.back).toBeGreaterThan(1.5);
      expect(state.endpoints['b:1']?.drain).toBeUndefined();
      const next = successor(state, 13_000 + skew);
      const [mine, kept] = after([next, twin], drained, [skew, 0]);
      expect(drained.get('a:1')).toBeLessThan(0.15);
      expect(kept?.[0]).toBeGreaterThan(0.2);
      // Before: 0.113 (the drained share) at 14–15 s, 0.129 at 16 s, 0.152, 0.178, 0.202 at 22 s, the twin's 0.220 at 24 s.
      (mine as number[]).forEach((s, k) => expect(s, `${k + 14} s`).toBeCloseTo(kept?.[k] as number, 3));
    });
  }

  it('a drain the last owner saw cleared, but had not restored yet, goes back on the new owner\'s next run', () => {
    const { owner, twin, drained } = drainedAt13();
    // The report that clears it reaches the old owner, which hands over before its next tick.
    const cleared = (e: WeightEngine): void => {
      for (const key of KEYS) {
        const s = drained.get(key) as number;
        e.observeSample('svc', key, { at: 14_000, cpu: 2.8 * s, ...report(120 * s, 120 * s, 20 * s) });
      }
    };
    cleared(owner);
    cleared(twin);
    expect(drainOf(owner)).toMatchObject({ reportMsAgo: 0, cleared: true });
    const next = successor(exported(owner), 14_000);
    // The twin goes back at its tick at 14 s.
    const back = tick(twin, 14_000).share;
    expect(back).toBeGreaterThan(0.2);
    tick(next, 14_000);
    // A sample that is no load report (an agent's cpu) makes the controller run: before, the
    // drain held there (0.113) until the next load report.
    for (const e of [next, twin]) for (const key of KEYS) e.observeSample('svc', key, { at: 15_000, cpu: 0.7 });
    const mine = tick(next, 15_000);
    expect(mine.rules).toContain('backlog-drain');
    expect(mine.share).toBeCloseTo(tick(twin, 15_000).share, 2);
  });

  it('a drain whose report is stale at the import is dropped: the endpoint climbs back at the controller\'s pace', () => {
    const { owner, drained } = drainedAt13();
    // No report since 12 s: 6 s old at 18 s, past staleAfterMs (5 s).
    for (let t = 14_000; t <= 18_000; t += 1_000) tick(owner, t);
    expect(drainOf(owner)).toMatchObject({ reportMsAgo: 6_000 });
    const state = exported(owner);
    const next = successor(state, 18_000);
    expect(importedDrain(next, 18_000)).toBeUndefined();
    // As from an export without it (reports again from 20 s). Before: back at once on the first.
    const { drain: _, ...a } = state.endpoints['a:1'] as ExportedEndpoint;
    const without = successor({ ...state, endpoints: { ...state.endpoints, 'a:1': a } }, 18_000);
    without.tick(18_000);
    const [mine, old] = after([next, without], drained, [6_000, 6_000], 24_000);
    expect(mine?.[0]).toBeLessThan(0.15);
    (mine as number[]).forEach((s, k) => expect(s, `${k + 20} s`).toBeCloseTo(old?.[k] as number, 6));
  });

  it('an export without it (an older replica\'s) imports as before: the endpoint climbs back from its drained weight', () => {
    const { owner, drained } = drainedAt13();
    const state = exported(owner);
    const { drain: _, ...a } = state.endpoints['a:1'] as ExportedEndpoint;
    const next = successor({ ...state, endpoints: { ...state.endpoints, 'a:1': a } }, 13_000);
    expect(importedDrain(next, 13_000)).toBeUndefined();
    const [mine] = after([next], drained);
    expect(mine?.[0]).toBeCloseTo(drained.get('a:1') as number, 3);
  });

  it('handed back to a replica that drained it before: its own drain of then is gone with the ownership', () => {
    const { owner: first, twin, drained } = drainedAt13();
    const second = successor(exported(first), 13_000);
    const [mine, kept] = after([second, twin], drained, [], 15_000);
    expect(mine?.[1]).toBeCloseTo(kept?.[1] as number, 3);
    // Back to the first owner, whose own drain (12 s) is still fresh: the second's export has none.
    expect(drainOf(second)).toBeUndefined();
    first.importClusterState('svc', exported(second), 15_000);
    const shares = new Map(KEYS.map((k) => [k, 0.25]));
    shares.set('a:1', kept?.[1] as number);
    // Before: the next report cleared the first owner's own drain, and it went back again on top of the second's restore (×2).
    const [again, still] = after([first, twin], shares, [], 20_000).map((xs) => xs.slice(2));
    (again as number[]).forEach((s, k) => expect(s, `${k + 16} s`).toBeCloseTo(still?.[k] as number, 2));
  });
});

describe('a drain carried onto the weights served since the state (ha/weight-share.ts reanchored)', () => {
  /** What `e` served at its last tick at `now`, as the overrides record holds it. */
  const served = (e: WeightEngine, now: number): Record<string, { weight: number }> => {
    const t = e.tick(now).clusters.get('svc');
    return Object.fromEntries(KEYS.map((k) => [k, { weight: t?.weights.get(k) ?? 0 }]));
  };

  it('ended after the state was written (served back already): the new owner does not bring it back twice', () => {
    const { owner, twin, drained } = drainedAt13();
    const state = exported(owner);
    // The owner goes back at 14 s, serves that, and stops before its next state refresh.
    const [, kept] = after([owner, twin], drained, [], 14_000);
    const next = successor(reanchored(state, served(owner, 15_000)), 15_000);
    expect(importedDrain(next, 15_000)).toBeUndefined();
    tick(twin, 15_000);
    const shares = new Map(KEYS.map((k) => [k, (1 - (kept?.[0] as number)) / 3]));
    shares.set('a:1', kept?.[0] as number);
    // Before: brought back again on the first report: 0.38 of the traffic against the twin's 0.22, still 0.28 6 s on.
    const [mine, still] = after([next, twin], shares, [2_000, 2_000], 20_000);
    (mine as number[]).forEach((s, k) => expect(s, `${k + 16} s`).toBeCloseTo(still?.[k] as number, 2));
  });

  it('still under way (what is served is the drain): goes back on the first report without a backlog', () => {
    const { owner, twin, drained } = drainedAt13();
    const next = successor(reanchored(exported(owner), served(owner, 13_000)), 13_000);
    const [mine, kept] = after([next, twin], drained);
    (mine as number[]).forEach((s, k) => expect(s, `${k + 14} s`).toBeCloseTo(kept?.[k] as number, 2));
  });
});

describe('an exported drain is untrusted input', () => {
  const broken: [string, unknown][] = [
    ['not an object', 'x'],
    ['null', null],
    ['an array', [2]],
    ['no factor back', { reportMsAgo: 0 }],
    ['a factor back that is a string', { back: '2', reportMsAgo: 0 }],
    ['a factor back of NaN', { back: Number.NaN, reportMsAgo: 0 }],
    ['an infinite factor back', { back: Number.POSITIVE_INFINITY, reportMsAgo: 0 }],
    ['a factor back of 0', { back: 0, reportMsAgo: 0 }],
    ['a negative factor back', { back: -2, reportMsAgo: 0 }],
    ['a factor back of 1 (nothing to bring back)', { back: 1, reportMsAgo: 0 }],
    ['a factor back below 1 (a cut on the way back)', { back: 0.5, reportMsAgo: 0 }],
    ['no report age', { back: 2 }],
    ['a negative report age', { back: 2, reportMsAgo: -1 }],
    ['a report age of null', { back: 2, reportMsAgo: null }],
    ['cleared not a boolean', { back: 2, reportMsAgo: 0, cleared: 'yes' }],
  ];
  for (const [what, drain] of broken) {
    it(`a drain with ${what} is skipped: the endpoint imported, from its drained weight`, () => {
      const { owner } = drainedAt13();
      const state = exported(owner);
      const bad = { ...state, endpoints: { ...state.endpoints, 'a:1': { ...state.endpoints['a:1'], drain } } } as ExportedClusterState;
      const next = engine();
      expect(next.importClusterState('svc', bad, 13_000)).toBe(4);
      expect(importedDrain(next, 13_000)).toBeUndefined();
    });
  }

  it('a valid one is imported as exported', () => {
    const { owner } = drainedAt13();
    const state = exported(owner);
    expect(state.endpoints['a:1']?.drain).toBeDefined();
    expect(importedDrain(successor(state, 13_000), 13_000)).toEqual(state.endpoints['a:1']?.drain);
  });

  it('a factor back beyond the ceiling over the floor (400) is taken as that', () => {
    const { owner } = drainedAt13();
    const state = exported(owner);
    const next = successor({ ...state, endpoints: { ...state.endpoints, 'a:1': { ...(state.endpoints['a:1'] as ExportedEndpoint), drain: { back: 1e300, reportMsAgo: 0 } } } }, 13_000);
    expect(importedDrain(next, 13_000)).toEqual({ back: 400, reportMsAgo: 0 });
  });

  it('without a time (no `at`, no importer\'s now) none is imported', () => {
    const { owner } = drainedAt13();
    const { at: _, ...state } = exported(owner);
    const next = engine();
    next.importClusterState('svc', state);
    expect(importedDrain(next, 13_000)).toBeUndefined();
  });
});
