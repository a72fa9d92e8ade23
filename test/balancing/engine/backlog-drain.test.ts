/**
 * The backlog drain (src/balancing/engine/tick/backlog.ts): an endpoint whose load report shows
 * its queue growing far past what its peers' time in the system explains is cut, past the step
 * limit, to what drains it, held there, and goes back to the controller's weight on its next
 * report without a backlog.
 */
import { describe, expect, it } from 'vitest';
import { drainShare } from '../../../src/balancing/engine/tick/backlog.js';
import { WeightEngine } from '../../../src/balancing/engine/weight-engine.js';
import type { Sample } from '../../../src/balancing/engine/types.js';

/** One Envoy's load report for an endpoint: sent and finished per second, in progress now, and its peers' in progress and completions. */
const report = (sent: number, finished: number, inflight: number): Partial<Sample> => ({ rps: sent, successes: finished, errors: 0, inflight, peerInflight: 20, peerCompletions: 120 });

describe('drainShare', () => {
  it('a queue growing far past its peers: the share of what it was sent that drains it in about 2 s', () => {
    // Peers: 20 in progress for 120 completions a second, 1/6 s in the system; its 36 a second hold 6.
    // Backlog 40 − 6 = 34, drained in 2 s: (36 − 17) ÷ 48.
    expect(drainShare({ at: 0, ...report(48, 36, 40) })).toBeCloseTo(19 / 48, 9);
    // A backlog it cannot drain while sent anything: at least a fifth of what it was sent.
    expect(drainShare({ at: 0, ...report(48, 36, 200) })).toBe(0.2);
  });

  it('no drain: a queue not growing, one within what its peers hold, no completions (a stall: tick/stall.ts) or no peers', () => {
    expect(drainShare({ at: 0, ...report(40, 36, 40) })).toBeNaN();
    expect(drainShare({ at: 0, ...report(48, 36, 24) })).toBeNaN();
    expect(drainShare({ at: 0, ...report(48, 0, 40) })).toBeNaN();
    expect(drainShare({ at: 0, ...report(48, 36, 40), peerCompletions: 0 })).toBeNaN();
    expect(drainShare({ at: 0, cpu: 1 })).toBeNaN();
  });
});

describe('the engine drains a backlog past the step limit and goes back', () => {
  const KEYS = ['a:1', 'b:1', 'c:1', 'd:1'];
  const engine = (): WeightEngine => {
    const e = new WeightEngine({});
    e.setCluster('svc', KEYS.map((key) => ({ key, weight: 1 })), { kind: 'pid', setpoint: 'mean', metric: 'cpu' });
    return e;
  };
  /** Every endpoint reports cpu `peers` (0.7) and a steady flow at `at`, but `a`, which reports `a`. */
  const reportAll = (e: WeightEngine, at: number, a: Partial<Sample>, peers = 0.7): void => {
    for (const key of KEYS) e.observeSample('svc', key, { at, cpu: peers, ...report(30, 30, 5), ...(key === 'a:1' ? a : {}) });
  };
  const share = (e: WeightEngine, now: number): { share: number; rules: readonly string[] } => {
    const t = e.tick(now).clusters.get('svc');
    const ws = KEYS.map((k) => t?.weights.get(k) ?? 0);
    return { share: (ws[0] as number) / ws.reduce((x, y) => x + y, 0), rules: t?.explanations.get('a:1')?.rules ?? [] };
  };
  /** Ticks of 1 s with reports every 2 s, as Envoy's; returns a's share after each tick. */
  const settled = (e: WeightEngine): number => {
    let s = 0;
    for (let t = 1_000; t <= 10_000; t += 1_000) {
      if (t % 2_000 === 0) reportAll(e, t, {});
      s = share(e, t).share;
    }
    return s;
  };

  it('cut at once to what drains it, held until a report without a backlog, then back where the controller alone is', () => {
    // The same reports to both, but a backlog in one: its cpu stops at 1, it was sent 48 a second
    // and finished 36, with 40 in progress (34 past what its throughput holds) or 8 (none).
    const [e, twin] = [engine(), engine()];
    expect(settled(e)).toBeCloseTo(0.25, 2);
    settled(twin);
    reportAll(e, 12_000, { cpu: 1, ...report(48, 36, 40) });
    reportAll(twin, 12_000, { cpu: 1, ...report(48, 36, 8) });
    const [drained, alone] = [share(e, 12_000), share(twin, 12_000)];
    expect(drained.rules).toContain('backlog-drain');
    expect(alone.rules).not.toContain('backlog-drain');
    // The controller alone moves at the step limit at most: 1.25² for a report every 2 s.
    expect(alone.share).toBeGreaterThan(0.25 / 1.7);
    expect(drained.share).toBeLessThan(0.6 * alone.share);
    // Held between reports.
    expect(share(e, 13_000).share).toBeCloseTo(drained.share, 6);
    share(twin, 13_000);
    // Drained: a report without a backlog brings it back to the controller's weight at once.
    for (const x of [e, twin]) reportAll(x, 14_000, { cpu: 0.7, ...report(30, 32, 3) });
    const [back, twinBack] = [share(e, 14_000), share(twin, 14_000)];
    expect(back.rules).toContain('backlog-drain');
    expect(back.share).toBeCloseTo(twinBack.share, 2);
    expect(share(e, 15_000).rules).not.toContain('backlog-drain');
  });

  it('the same report without a backlog moves it only as far as the step limit', () => {
    const e = engine();
    settled(e);
    reportAll(e, 12_000, { cpu: 1, ...report(48, 36, 8) });
    const s = share(e, 12_000);
    expect(s.rules).not.toContain('backlog-drain');
    expect(s.share).toBeGreaterThan(0.25 / 1.7);
  });

  it('only as deep as its peers can carry: shallower as they near 90% busy, none from there', () => {
    const drainedAt = (peers: number): { share: number; rules: readonly string[] } => {
      const e = engine();
      for (let t = 2_000; t <= 10_000; t += 2_000) {
        reportAll(e, t, {}, peers);
        share(e, t);
      }
      reportAll(e, 12_000, { cpu: 1, ...report(48, 36, 40) }, peers);
      return share(e, 12_000);
    };
    const [free, busy, full] = [drainedAt(0.7), drainedAt(0.84), drainedAt(0.9)];
    expect(free.rules).toContain('backlog-drain');
    expect(busy.rules).toContain('backlog-drain');
    expect(full.rules).not.toContain('backlog-drain');
    expect(free.share).toBeLessThan(busy.share);
    expect(busy.share).toBeLessThan(full.share);
  });

  it('a drained endpoint taken out of rotation and back starts over: no way back from a drain of before', () => {
    const [e, twin] = [engine(), engine()];
    settled(e);
    settled(twin);
    reportAll(e, 12_000, { cpu: 1, ...report(48, 36, 40) });
    reportAll(twin, 12_000, { cpu: 1, ...report(48, 36, 8) });
    expect(share(e, 12_000).rules).toContain('backlog-drain');
    share(twin, 12_000);
    // The operator takes it out and puts it back: it rejoins at its fair share, as its twin does.
    for (const [x, health] of [[e, 'UNHEALTHY'], [twin, 'UNHEALTHY'], [e, 'HEALTHY'], [twin, 'HEALTHY']] as const) {
      x.setCluster('svc', KEYS.map((key) => ({ key, weight: 1, ...(key === 'a:1' ? { health } : {}) })), { kind: 'pid', setpoint: 'mean', metric: 'cpu' });
      if (health === 'UNHEALTHY') share(x, 13_000);
    }
    for (const x of [e, twin]) reportAll(x, 14_000, { cpu: 0.7, ...report(30, 32, 3) });
    const [back, twinBack] = [share(e, 14_000), share(twin, 14_000)];
    expect(back.rules).not.toContain('backlog-drain');
    expect(back.share).toBeCloseTo(twinBack.share, 6);
  });

  it('several proxies reporting one after another: a drain stands for one report, neither deepened nor cleared by the others', () => {
    const e = engine();
    settled(e);
    reportAll(e, 12_000, { cpu: 1, ...report(48, 36, 40) });
    const drained = share(e, 12_000).share;
    // Half a second on, another proxy's report: the fleet's sums still mostly from before the drain.
    // (Its peers' own steps move its share a little; drained again it would fall by half.)
    reportAll(e, 12_500, { cpu: 1, ...report(46, 36, 38) });
    expect(share(e, 12_500).share).toBeGreaterThan(0.85 * drained);
    // And one without a backlog: the drain still stands (back, it would double).
    reportAll(e, 13_000, { cpu: 0.8, ...report(30, 32, 3) });
    const standing = share(e, 13_000);
    expect(standing.rules).toContain('backlog-drain');
    expect(standing.share).toBeLessThan(1.2 * drained);
    // A report past its stand: back.
    reportAll(e, 14_000, { cpu: 0.7, ...report(30, 32, 3) });
    expect(share(e, 14_000).share).toBeGreaterThan(1.5 * drained);
  });

  it("no drain from an endpoint's first report after a death, nor its first ever: they cover a window it served only the end of", () => {
    // a reports nothing from 12 s to 20 s (its connections refused), then a few calls in flight for
    // the few it finished in the window: a backlog by the numbers, the window's start by the facts.
    const [dead, alive] = [engine(), engine()];
    for (const x of [dead, alive]) settled(x);
    for (let t = 12_000; t <= 20_000; t += 2_000) {
      for (const key of KEYS) if (key !== 'a:1') dead.observeSample('svc', key, { at: t, cpu: 0.7, ...report(30, 30, 5) });
      reportAll(alive, t, {});
      share(dead, t);
      share(alive, t);
    }
    reportAll(dead, 22_000, { cpu: 0.05, ...report(8, 2, 4) });
    reportAll(alive, 22_000, { cpu: 0.05, ...report(8, 2, 4) });
    expect(share(dead, 22_000).rules).not.toContain('backlog-drain');
    // The same report after one two seconds before that saw traffic: a backlog.
    expect(share(alive, 22_000).rules).toContain('backlog-drain');
    // Its next report, two seconds on, is read as any other: a backlog drains.
    reportAll(dead, 24_000, { cpu: 1, ...report(48, 36, 40) });
    expect(share(dead, 24_000).rules).toContain('backlog-drain');
    // A cluster's first report (fulcrum just started, or the endpoint new to the proxies).
    const fresh = engine();
    reportAll(fresh, 2_000, { cpu: 0.05, ...report(8, 2, 4) });
    expect(share(fresh, 2_000).rules).not.toContain('backlog-drain');
  });

  it('a stale report drains nothing', () => {
    const e = engine();
    settled(e);
    reportAll(e, 12_000, {});
    e.observeSample('svc', 'a:1', { at: 5_000, cpu: 1, ...report(48, 36, 40) });
    expect(share(e, 12_000).rules).not.toContain('backlog-drain');
  });
});
