/**
 * The stall rule (tick/stall.ts): a hung backend (accepts, never answers) is taken out from its
 * load reports (requests in progress piling up, none completed, while its peers complete) before
 * any timeout turns its requests into errors; and the cases that look alike but are not one
 * backend's fault are left alone.
 */
import { describe, it, expect } from 'vitest';
import { WeightEngine } from '../../../src/balancing/engine/weight-engine.js';
import { judgeStalls, type StallReading } from '../../../src/balancing/engine/tick/stall.js';
import { EJECTION_DEFAULTS, SAFETY_DEFAULTS, type ClusterTick, type SafetySettings, type Sample, type WeightingPolicy } from '../../../src/balancing/engine/types.js';

const PID: WeightingPolicy = { kind: 'pid', setpoint: 'mean' };
const REPORT_MS = 2_000;

/** One endpoint's traffic over one report interval, as the proxies saw it. */
interface Flow {
  /** Issued per second. */
  readonly rps: number;
  /** Answered per second (successes). */
  readonly successes: number;
  /** Failed per second (e.g. route timeouts); default 0. */
  readonly errors?: number;
  /** In progress at report time. */
  readonly inflight: number;
}

/** A healthy endpoint at `rps` with requests taking `latencyS`. */
const healthy = (rps: number, latencyS = 0.2): Flow => ({ rps, successes: rps, inflight: rps * latencyS });

/**
 * A cluster fed one load report every REPORT_MS and ticked every second: each endpoint's sample
 * carries its peers' in-progress and completions as the same proxies saw them (all of them here).
 */
class Cluster {
  readonly engine = new WeightEngine();
  readonly keys: string[];
  last!: ClusterTick;
  /** Every tick's rules, per endpoint position (explanations are read before the frame is reused). */
  readonly rules: string[][][] = [];
  now = 0;

  constructor(n: number, policy: WeightingPolicy = PID, safety?: Partial<SafetySettings>) {
    this.keys = Array.from({ length: n }, (_, i) => `10.0.0.${i + 1}:80`);
    this.engine.setCluster('svc', this.keys.map((key) => ({ key, weight: 1 })), policy, safety);
  }

  /** One report interval: a report of `flows` (undefined: not reported), then `between` if given, then two ticks. */
  report(flows: readonly (Flow | undefined)[], between?: () => void): ClusterTick {
    this.now += REPORT_MS;
    // As the aggregator sums them: over the endpoints that answered some.
    const answering = (f: Flow | undefined): f is Flow => (f?.successes ?? 0) > 0;
    const inflight = flows.reduce((s, f) => s + (answering(f) ? f.inflight : 0), 0);
    const completions = flows.reduce((s, f) => s + (answering(f) ? f.successes + (f.errors ?? 0) : 0), 0);
    flows.forEach((f, i) => {
      if (f === undefined) return;
      const own = answering(f) ? { inflight: f.inflight, completions: f.successes + (f.errors ?? 0) } : { inflight: 0, completions: 0 };
      const sample: Sample = { at: this.now - 50, rps: f.rps, errors: f.errors ?? 0, inflight: f.inflight, successes: f.successes, peerInflight: inflight - own.inflight, peerCompletions: completions - own.completions };
      this.engine.observeSample('svc', this.keys[i] as string, sample);
    });
    between?.();
    this.tick(this.now - REPORT_MS / 2);
    return this.tick(this.now);
  }

  private tick(at: number): ClusterTick {
    this.last = this.engine.tick(at).clusters.get('svc') as ClusterTick;
    const last = this.last;
    this.rules.push(this.keys.map((k) => [...(last.explanations.get(k)?.rules ?? [])]));
    return this.last;
  }

  health(i: number): string | undefined {
    return this.last.health.get(this.keys[i] as string);
  }

  ejected(): number[] {
    return this.keys.flatMap((k, i) => (this.last.health.get(k) === 'UNHEALTHY' ? [i] : []));
  }

  /** Reports `flows(r)` for `reports` intervals; every interval's ejected endpoints. */
  run(reports: number, flows: (r: number) => readonly (Flow | undefined)[]): number[][] {
    const out: number[][] = [];
    for (let r = 0; r < reports; r++) {
      this.report(flows(r));
      out.push(this.ejected());
    }
    return out;
  }
}

/** Endpoint `k` hangs after `warm` reports: issued `rps`, none completed, its requests in progress pile up. */
function hangs(n: number, k: number, warm: number, rps = 40): (r: number) => Flow[] {
  return (r) => Array.from({ length: n }, (_, i) => (i === k && r >= warm ? { rps, successes: 0, inflight: 8 + rps * (REPORT_MS / 1000) * (r - warm + 1) } : healthy(rps)));
}

describe('a hung backend is taken out from its load reports', () => {
  it('at the first report in which it answered none of its piling requests, explained in /v1/weights', () => {
    const c = new Cluster(6);
    const ejected = c.run(8, hangs(6, 4, 5));
    expect(ejected.slice(0, 5).every((e) => e.length === 0)).toBe(true);
    expect(ejected[5]).toEqual([4]);
    const x = c.last.explanations.get(c.keys[4] as string);
    expect(x?.health).toBe('UNHEALTHY');
    expect(x?.rules).toContain('ejected');
    expect(x?.ejection?.reason).toMatch(/^stalled: \d+ requests in progress and none answered/);
    expect(c.last.failStatic).toBe(false);
  });

  it('at the report just after it hung, which still carries an answer or two from before (almost none answered)', () => {
    const c = new Cluster(6);
    // Sent 17.5 a second, one answer in the 2 s (0.5 a second): a real Envoy's report just after a hang.
    const ejected = c.run(7, (r) => Array.from({ length: 6 }, (_, i) => (i === 4 && r >= 5 ? { rps: 17.5, successes: 0.5, inflight: 38 + 35 * (r - 5) } : healthy(17.5))));
    expect(ejected.slice(0, 5).every((e) => e.length === 0)).toBe(true);
    expect(ejected[5]).toEqual([4]);
    expect(c.last.explanations.get(c.keys[4] as string)?.ejection?.reason).toMatch(/^stalled: \d+ requests in progress and almost none answered/);
  });

  it('also once its oldest requests time out (Envoy counts them as errors): none answered, more in progress', () => {
    const c = new Cluster(6);
    const ejected = c.run(8, (r) => Array.from({ length: 6 }, (_, i) => (i === 4 && r >= 5 ? { rps: 40, successes: 0, errors: 4, inflight: 100 + 36 * (r - 5) } : healthy(40))));
    expect(ejected[5]).toEqual([4]);
    expect(c.last.explanations.get(c.keys[4] as string)?.ejection?.reason).toMatch(/^stalled/);
  });

  it('also when its cluster is set again between that report and the tick (one endpoint more): the states carry their flows', () => {
    const c = new Cluster(6);
    c.run(5, hangs(6, 4, 5));
    const grown = [...c.keys, '10.0.0.99:80'].map((key) => ({ key, weight: 1 }));
    c.report(hangs(6, 4, 5)(5), () => c.engine.setCluster('svc', grown, PID));
    expect(c.ejected()).toEqual([4]);
    expect(c.last.explanations.get(c.keys[4] as string)?.ejection?.reason).toMatch(/^stalled/);
  });

  it('is released after the back-off on probation, and taken out again while still hung', () => {
    const c = new Cluster(4);
    c.run(3, hangs(4, 1, 0));
    expect(c.health(1)).toBe('UNHEALTHY');
    const ejectedFor = c.run(12, (r) => {
      // Out of the assignment: nothing new is sent to it; its requests time out (errors complete them).
      const f = hangs(4, 1, 0)(r);
      if (c.health(1) === 'UNHEALTHY') f[1] = { rps: 0, successes: 0, inflight: 0 };
      return f;
    });
    const back = ejectedFor.findIndex((e) => !e.includes(1));
    expect(back).toBeGreaterThan(0);
    expect(c.last.explanations.get(c.keys[1] as string)?.ejection?.count ?? 0).toBeGreaterThanOrEqual(2);
  });

  it('comes back on probation once it answers again', () => {
    const c = new Cluster(4);
    c.run(3, hangs(4, 2, 0));
    expect(c.health(2)).toBe('UNHEALTHY');
    const from = c.rules.length;
    for (let r = 0; r < 10; r++) c.report([healthy(40), healthy(40), c.health(2) === 'UNHEALTHY' ? undefined : healthy(10), healthy(40)]);
    expect(c.health(2)).toBe('HEALTHY');
    expect(c.rules.slice(from).some((t) => t[2]?.includes('probation'))).toBe(true);
  });

  it('never more than maxEjectedRatio of the cluster (3 of 6 hang: 2 out)', () => {
    const c = new Cluster(6);
    c.run(4, (r) => Array.from({ length: 6 }, (_, i) => (i < 3 && r >= 1 ? { rps: 40, successes: 0, inflight: 80 * r } : healthy(40))));
    expect(c.ejected()).toHaveLength(Math.floor(EJECTION_DEFAULTS.maxEjectedRatio * 6));
  });

  it('never the last serving endpoint (two endpoints, one of them already out by the operator)', () => {
    const engine = new WeightEngine();
    const keys = ['10.0.0.1:80', '10.0.0.2:80', '10.0.0.3:80'];
    engine.setCluster('svc', [{ key: keys[0] as string, weight: 1 }, { key: keys[1] as string, weight: 1 }, { key: keys[2] as string, weight: 1, health: 'DRAINING' }], PID);
    let last!: ClusterTick;
    for (let r = 1; r <= 4; r++) {
      const at = r * REPORT_MS;
      engine.observeSample('svc', keys[0] as string, { at, rps: 40, errors: 0, inflight: 8, successes: 40, peerInflight: 80 * r, peerCompletions: 0 });
      engine.observeSample('svc', keys[1] as string, { at, rps: 40, errors: 0, inflight: 80 * r, successes: 0, peerInflight: 8, peerCompletions: 40 });
      last = engine.tick(at).clusters.get('svc') as ClusterTick;
    }
    expect(last.health.get(keys[1] as string)).toBe('UNHEALTHY'); // the other still serves
    expect(last.health.get(keys[0] as string)).toBe('HEALTHY');
  });

  it('not with ejection disabled', () => {
    const c = new Cluster(4);
    c.engine.setCluster('svc', c.keys.map((key) => ({ key, weight: 1 })), PID, undefined, { enabled: false });
    expect(c.run(5, hangs(4, 0, 1)).every((e) => e.length === 0)).toBe(true);
  });
});

describe('what looks alike but is not one hung backend: left alone', () => {
  it('long-lived requests (gRPC streams): every endpoint completes few, alike; a new endpoint opens streams that have not ended yet', () => {
    // Streams last ~60 s: 5 new a second each, ~300 open, ~5 ending a second.
    const stream = (r: number): Flow => ({ rps: 5, successes: r % 3 === 0 ? 0 : 5, inflight: 300 + (r % 3) });
    const c = new Cluster(5);
    const ejected = c.run(20, (r) => [stream(r), stream(r + 1), stream(r + 2), stream(r), r < 5 ? { rps: 0, successes: 0, inflight: 0 } : { rps: 25, successes: 0, inflight: 50 * (r - 4) }]);
    expect(ejected.every((e) => e.length === 0)).toBe(true);
  });

  it('every endpoint streams and none completes in a report: the fleet, not one backend', () => {
    const c = new Cluster(4);
    const ejected = c.run(10, (r) => Array.from({ length: 4 }, (_, i) => ({ rps: 5, successes: i === 0 ? 0 : r % 2, inflight: 100 + 10 * r })));
    expect(ejected.every((e) => e.length === 0)).toBe(true);
  });

  it('low traffic: a handful of requests per interval', () => {
    const c = new Cluster(4);
    // About one request a second each; the hung one holds what it was sent, a few at most.
    const ejected = c.run(3, (r) => [healthy(1, 0.05), healthy(1, 0.05), healthy(1, 0.05), { rps: 1, successes: 0, inflight: Math.min(4, 2 * (r + 1)) }]);
    expect(ejected.every((e) => e.length === 0)).toBe(true);
  });

  it('every endpoint stalls (the fleet, e.g. a shared dependency hangs): fail static, the cluster is never emptied', () => {
    const c = new Cluster(4);
    const ejected = c.run(10, (r) => Array.from({ length: 4 }, () => (r < 3 ? healthy(40) : { rps: 40, successes: 0, inflight: 80 * (r - 2) })));
    expect(ejected.every((e) => e.length === 0)).toBe(true);
    expect([...c.last.health.values()].every((h) => h === 'HEALTHY')).toBe(true);
  });

  it('most of the cluster stalls (3 of 4): the peers that complete are not most of them, so nothing is judged', () => {
    const c = new Cluster(4);
    const ejected = c.run(6, (r) => Array.from({ length: 4 }, (_, i) => (i < 3 && r >= 1 ? { rps: 40, successes: 0, inflight: 80 * r } : healthy(40))));
    expect(ejected.every((e) => e.length === 0)).toBe(true);
  });

  it('an endpoint that is merely slow (completes some) is not stalled', () => {
    const c = new Cluster(4);
    // 10× slower: it completes a fraction of what it is sent while its backlog grows.
    const ejected = c.run(10, (r) => [healthy(40), healthy(40), healthy(40), r < 2 ? healthy(40) : { rps: 40, successes: 4, inflight: 8 + 72 * (r - 1) }]);
    expect(ejected.every((e) => e.length === 0)).toBe(true);
  });

  it('an endpoint answering a few more than a stray one (6% of what it is sent: 17× slower) is not stalled', () => {
    const c = new Cluster(4);
    const ejected = c.run(10, (r) => [healthy(40), healthy(40), healthy(40), r < 2 ? healthy(40) : { rps: 40, successes: 2.4, inflight: 8 + 75 * (r - 1) }]);
    expect(ejected.every((e) => e.length === 0)).toBe(true);
  });

  it('reports from only some proxies: a proxy calling only this endpoint (say with streams) vouches for no peer', () => {
    const c = new Cluster(4);
    const keys = c.keys;
    const ejected: number[][] = [];
    for (let r = 1; r <= 6; r++) {
      c.now += REPORT_MS;
      const at = c.now - 50;
      // Proxy A calls only endpoint 0, with long requests; proxy B calls the others, fast.
      c.engine.observeSample('svc', keys[0] as string, { at, rps: 10, errors: 0, inflight: 20 * r, successes: 0, peerInflight: 0, peerCompletions: 0 });
      for (const k of keys.slice(1)) c.engine.observeSample('svc', k, { at, rps: 40, errors: 0, inflight: 8, successes: 40, peerInflight: 16, peerCompletions: 80 });
      c.last = c.engine.tick(c.now).clusters.get('svc') as ClusterTick;
      ejected.push(c.ejected());
    }
    expect(ejected.every((e) => e.length === 0)).toBe(true);
  });

  it('samples without completion counts (agents, another replica\'s proxies) are never judged', () => {
    const c = new Cluster(4);
    for (let r = 1; r <= 6; r++) {
      c.now += REPORT_MS;
      c.keys.forEach((k, i) => c.engine.observeSample('svc', k, i === 0 ? { at: c.now, rps: 40, errors: 0, inflight: 80 * r } : { at: c.now, rps: 40, errors: 0, inflight: 8, successes: 40, peerInflight: 80 * r + 16, peerCompletions: 80 }));
      c.last = c.engine.tick(c.now).clusters.get('svc') as ClusterTick;
      expect(c.ejected()).toEqual([]);
    }
  });

  /** Endpoint 0's stalled reading (its peers' healthy ones 150 ms older), read `ageMs` after it came, under `staleAfterMs`; its health then. */
  const judgedLate = (staleAfterMs: number, ageMs: number): string | undefined => {
    const c = new Cluster(4, PID, { staleAfterMs });
    c.run(3, (r) => Array.from({ length: 4 }, () => healthy(40 + r)));
    c.engine.observeSample('svc', c.keys[0] as string, { at: c.now + 100, rps: 40, errors: 0, inflight: 200, successes: 0, peerInflight: 24, peerCompletions: 120 });
    return c.engine.tick(c.now + 100 + ageMs).clusters.get('svc')?.health.get(c.keys[0] as string);
  };

  it('a stalled reading older than the cluster\'s staleAfterMs is not judged', () => {
    expect(judgedLate(SAFETY_DEFAULTS.staleAfterMs, SAFETY_DEFAULTS.staleAfterMs + 1)).toBe('HEALTHY');
    // staleAfterMs 2 s (reports every second): a reading 3 s old is not judged, nor are its peers'.
    expect(judgedLate(2_000, 3_000)).toBe('HEALTHY');
  });

  it('readings are judged while within the cluster\'s staleAfterMs: 8 s old under 15 s (reports every 10 s)', () => {
    expect(judgedLate(15_000, 8_000)).toBe('UNHEALTHY');
    expect(judgedLate(15_000, 15_001)).toBe('HEALTHY');
  });

  it('never for less than a tick: under staleAfterMs 200 ms, the first tick after a report (800 ms later, its peers\' 950 ms) still judges it', () => {
    expect(judgedLate(200, 800)).toBe('UNHEALTHY');
    expect(judgedLate(200, 1_001)).toBe('HEALTHY');
  });
});

describe('judgeStalls (pure)', () => {
  const reading = (x: Partial<Sample>, prevInflight = 10): StallReading => ({ sample: { at: 0, rps: 40, inflight: 100, successes: 0, peerInflight: 24, peerCompletions: 120, ...x }, prevInflight });
  const peer = reading({ inflight: 8, successes: 40 }, 8);

  it('judges a stall many times the peers\' latency, and no other', () => {
    expect(judgeStalls([reading({}), peer, peer], EJECTION_DEFAULTS, 1).map((v) => v.index)).toEqual([0]);
    // 100 / 40 = 2.5 s stalled vs peers' 0.2 s; at 1.0 s of peers' latency it is not 5×.
    expect(judgeStalls([reading({ peerInflight: 120 }), peer, peer], EJECTION_DEFAULTS, 1)).toEqual([]);
  });

  it('needs growth over a previous reading, and no room means no verdict', () => {
    expect(judgeStalls([reading({}, Number.NaN), peer, peer], EJECTION_DEFAULTS, 1)).toEqual([]);
    expect(judgeStalls([reading({}, 100), peer, peer], EJECTION_DEFAULTS, 1)).toEqual([]);
    expect(judgeStalls([reading({}), peer, peer], EJECTION_DEFAULTS, 0)).toEqual([]);
  });

  it('almost none answered is silent; a peer answering only that little is no peer that answers', () => {
    // Two of 40 a second answered (STALL.answeredShare): stalled; three: not.
    expect(judgeStalls([reading({ successes: 2 }), peer, peer], EJECTION_DEFAULTS, 1).map((v) => v.index)).toEqual([0]);
    expect(judgeStalls([reading({ successes: 3 }), peer, peer], EJECTION_DEFAULTS, 1)).toEqual([]);
    // Its two peers answer almost none too: not most of its peers answer, so the fleet, not one backend.
    const quiet = reading({ inflight: 8, successes: 1 }, 8);
    expect(judgeStalls([reading({ successes: 1 }), quiet, quiet, peer], EJECTION_DEFAULTS, 1)).toEqual([]);
  });

  it('a stall shorter than STALL.minStallMs is no verdict, however fast the peers', () => {
    expect(judgeStalls([reading({ rps: 400, inflight: 300, peerInflight: 1, peerCompletions: 1_000 }), peer, peer], EJECTION_DEFAULTS, 1)).toEqual([]);
  });
});
