/**
 * A replica taking a cluster over keeps the fleet outlier detector's verdicts (cluster-export.ts):
 * an ejected endpoint (for errors or a stall) stays out until its back-off ends, a relapse keeps
 * doubling, an endpoint on probation keeps earning its share back, a departed key keeps its
 * back-off; within the new owner's maxEjectedRatio, whatever its clock says, and whatever a
 * corrupted or hostile record holds.
 */
import { describe, expect, it } from 'vitest';
import { WeightEngine } from '../../../src/balancing/engine/weight-engine.js';
import type { ExportedClusterState } from '../../../src/balancing/engine/index.js';
import type { ClusterTick, EjectionSettings, EngineEndpoint, Explanation, Sample, WeightingPolicy } from '../../../src/balancing/engine/types.js';

const POLICY: WeightingPolicy = { kind: 'pid', setpoint: 'mean', metric: 'cpu' };
const key = (i: number): string => `10.0.0.${i}:80`;

type Fault = 'errors' | 'stall';

/** One endpoint's report over a second: issued, answered, failed, in progress. */
interface Flow {
  readonly rps: number;
  readonly successes: number;
  readonly errors: number;
  readonly inflight: number;
}

/**
 * A cluster reporting every second to whichever engine owns it, on that engine's clock (`offset`
 * ms from the world's). Its traffic follows what the owner publishes: an endpoint published
 * UNHEALTHY gets none. A faulty endpoint that gets traffic fails all of it (`errors`), or answers
 * none and piles it up (`stall`).
 */
class World {
  owner: WeightEngine;
  members: number[];
  readonly faults = new Map<number, Fault>();
  readonly declared = new Map<number, EngineEndpoint['health']>();
  now = 0;
  offset = 0;
  cpu = 0.5;
  last: ClusterTick | undefined;
  private readonly stalled = new Map<number, number>();

  constructor(
    n: number,
    private readonly ejection: Partial<EjectionSettings> = {},
  ) {
    this.members = Array.from({ length: n }, (_, i) => i);
    this.owner = this.replica();
  }

  /** An engine with the cluster set as the world lists it (a replica that never owned it). */
  replica(ejection: Partial<EjectionSettings> = this.ejection): WeightEngine {
    const engine = new WeightEngine();
    engine.setCluster('svc', this.endpoints(), POLICY, undefined, ejection);
    return engine;
  }

  private endpoints(): EngineEndpoint[] {
    return this.members.map((i): EngineEndpoint => {
      const health = this.declared.get(i);
      return { key: key(i), weight: 1, ...(health !== undefined ? { health } : {}) };
    });
  }

  set(members: number[]): void {
    this.members = members;
    this.owner.setCluster('svc', this.endpoints(), POLICY, undefined, this.ejection);
  }

  /** The owner's time. */
  get clock(): number {
    return this.now + this.offset;
  }

  private flow(i: number): Flow {
    if (this.last?.health.get(key(i)) === 'UNHEALTHY') return { rps: 0, successes: 0, errors: 0, inflight: 0 };
    const fault = this.faults.get(i);
    if (fault === 'errors') return { rps: 100, successes: 0, errors: 100, inflight: 0 };
    if (fault === 'stall') {
      const held = (this.stalled.get(i) ?? 0) + 100;
      this.stalled.set(i, held);
      return { rps: 100, successes: 0, errors: 0, inflight: held };
    }
    this.stalled.delete(i);
    return { rps: 100, successes: 100, errors: 0, inflight: 20 };
  }

  /** One second on: every member reports (its peers' in-progress and completions as the proxies saw them), then the owner ticks. */
  step(): ClusterTick {
    this.now += 1_000;
    const flows = this.members.map((i) => this.flow(i));
    const answering = (f: Flow): boolean => f.successes > 0;
    const inflight = flows.reduce((s, f) => s + (answering(f) ? f.inflight : 0), 0);
    const completions = flows.reduce((s, f) => s + (answering(f) ? f.successes + f.errors : 0), 0);
    this.members.forEach((i, p) => {
      const f = flows[p] as Flow;
      const own = answering(f) ? f : { inflight: 0, successes: 0, errors: 0 };
      const sample: Sample = { at: this.clock - 100, cpu: this.cpu, ...f, peerInflight: inflight - own.inflight, peerCompletions: completions - own.successes - own.errors };
      this.owner.observeSample('svc', key(i), sample);
    });
    this.last = this.owner.tick(this.clock).clusters.get('svc') as ClusterTick;
    return this.last;
  }

  /** The owner's export as etcd holds it (JSON). */
  exported(): ExportedClusterState {
    return JSON.parse(JSON.stringify(this.owner.exportClusterState('svc'))) as ExportedClusterState;
  }

  /**
   * The cluster passes to `next` (a new replica by default), whose clock is `skew` ms off the
   * owner's: it imports the owner's export at its own now and owns the cluster from then on.
   */
  handOver(o: { next?: WeightEngine; skew?: number; state?: ExportedClusterState } = {}): WeightEngine {
    const state = o.state ?? this.exported();
    const next = o.next ?? this.replica();
    this.offset += o.skew ?? 0;
    next.importClusterState('svc', state, this.clock);
    this.owner = next;
    return next;
  }

  /** Endpoint i as the owner's last tick published it: health, rules, ejection, and its share of the traffic (none while UNHEALTHY). */
  of(i: number): { health: string | undefined; rules: readonly string[]; ejection: Explanation['ejection']; share: number } {
    const t = this.last as ClusterTick;
    const x = t.explanations.get(key(i));
    let sum = 0;
    for (const [k, w] of t.weights) if (t.health.get(k) !== 'UNHEALTHY') sum += w;
    const health = t.health.get(key(i));
    return { health, rules: x?.rules ?? [], ejection: x?.ejection, share: health === 'UNHEALTHY' ? 0 : (t.weights.get(key(i)) as number) / sum };
  }

  /** Endpoint i turns faulty: steps until the owner ejects it. */
  eject(i: number, fault: Fault = 'errors'): void {
    this.faults.set(i, fault);
    this.until(ejected(this, i));
  }

  /** Steps until `done` holds (at most `max` steps); the steps taken. */
  until(done: () => boolean, max = 400): number {
    for (let k = 1; k <= max; k++) {
      this.step();
      if (done()) return k;
    }
    throw new Error(`not within ${max} s`);
  }
}

const ejected = (w: World, i: number) => (): boolean => w.of(i).health === 'UNHEALTHY' && w.of(i).rules.includes('ejected');
const back = (w: World, i: number) => (): boolean => w.of(i).health === 'HEALTHY';

/** Steps `a` and `b` together `n` times: the same health and (within 1e-6) the same shares each tick. */
function lockstep(a: World, b: World, n: number): void {
  for (let k = 0; k < n; k++) {
    a.step();
    b.step();
    for (const i of a.members) {
      expect(b.of(i).health, `${key(i)} ${k + 1} s after the hand-over`).toBe(a.of(i).health);
      expect(b.of(i).share, `${key(i)} ${k + 1} s after the hand-over`).toBeCloseTo(a.of(i).share, 6);
    }
  }
}

/** Endpoint i's next ejection in `w`, faulty throughout: seconds from it to its release. */
function nextEjection(w: World, i: number, fault: Fault = 'errors'): number {
  w.eject(i, fault);
  const at = w.now;
  w.until(back(w, i));
  return (w.now - at) / 1_000;
}

/** Endpoint i serves cleanly until it is back, then 15 s more (off probation: a relapse doubles). */
function recover(w: World, i: number): void {
  w.faults.delete(i);
  w.until(back(w, i));
  for (let k = 0; k < 15; k++) w.step();
}

/** Endpoint 3's ejections in `w`, each expected to last `lengths[k]` s, with a comeback between two (none after the last). */
function history(w: World, lengths: readonly number[]): void {
  w.step();
  lengths.forEach((s, k) => {
    if (k > 0) recover(w, 3);
    expect(nextEjection(w, 3)).toBe(s);
  });
}

/** Two worlds fed alike: `a` keeps its owner, `b` will hand over. */
function twins(n: number, ejection: Partial<EjectionSettings> = {}): [World, World] {
  return [new World(n, ejection), new World(n, ejection)];
}

describe('a hand-over keeps the outlier detector\'s verdicts', () => {
  for (const fault of ['errors', 'stall'] as const) {
    it(`an endpoint ejected (${fault}) stays out until its back-off ends, then serves on probation: as if the owner had not changed`, () => {
      const [a, b] = twins(4);
      for (const w of [a, b]) {
        for (let k = 0; k < 5; k++) w.step();
        w.eject(3, fault);
        for (let k = 0; k < 2; k++) w.step();
      }
      const until = a.of(3).ejection?.until as number;
      b.handOver();
      // Before: the new owner published it HEALTHY at its whole share (no traffic, no errors to see).
      b.step();
      expect(b.of(3).health).toBe('UNHEALTHY');
      expect(b.of(3).ejection).toMatchObject({ until, count: 1, reason: expect.stringMatching(fault === 'errors' ? /^all-failing/ : /^stalled/) as unknown });
      a.step();
      lockstep(a, b, 30);
      expect(b.now).toBeGreaterThan(until);
    });
  }

  it('the third ejection (level 2) lasts its 40 s on the new owner, and the next relapse there 80 s', () => {
    const [a, b] = twins(4);
    for (const w of [a, b]) {
      history(w, [10, 20]);
      recover(w, 3);
      w.eject(3);
    }
    const at = b.now;
    for (let k = 0; k < 5; k++) [a, b].forEach((w) => w.step());
    b.handOver();
    // Before: released at once (HEALTHY, no errors seen), ejected again 10 s, level 0.
    b.until(back(b, 3));
    a.until(back(a, 3));
    expect((b.now - at) / 1_000).toBe(40);
    recover(b, 3);
    expect(nextEjection(b, 3)).toBe(80);
  });

  it('after a comeback, a relapse on the new owner doubles', () => {
    const [a, b] = twins(4);
    for (const w of [a, b]) {
      history(w, [10]);
      recover(w, 3);
    }
    b.handOver();
    expect(nextEjection(b, 3)).toBe(20);
    expect(nextEjection(a, 3)).toBe(20);
  });

  it('on probation at level 1: a relapse before it came back stays at 20 s', () => {
    const [a, b] = twins(4);
    for (const w of [a, b]) history(w, [10, 20]);
    expect(b.of(3).rules).toContain('probation');
    b.handOver();
    // Before: a new history, 10 s.
    expect(nextEjection(b, 3)).toBe(20);
    expect(nextEjection(a, 3)).toBe(20);
  });

  it('on probation under a low-load hold: it keeps climbing back toward its share (its earning mark travels)', () => {
    const [a, b] = twins(4);
    for (const w of [a, b]) {
      w.step();
      w.eject(3);
      // Nearly idle from now on: the controller rests, only an earning endpoint climbs.
      w.cpu = 0.02;
      w.faults.delete(3);
      w.until(back(w, 3));
      w.step();
    }
    expect(b.of(3).share).toBeLessThan(0.15);
    b.handOver();
    // Before: it stayed at its start (0.077 of the traffic) for as long as the load stayed low.
    lockstep(a, b, 20);
    expect(b.of(3).share).toBeGreaterThan(0.2);
  });

  it('a departed key keeps its back-off: re-listed on the new owner, it is still ejected until the back-off ends', () => {
    const [a, b] = twins(4);
    for (const w of [a, b]) {
      w.step();
      w.eject(3);
      w.set([0, 1, 2]);
      w.step();
    }
    const until = a.now + 9_000;
    b.handOver();
    expect(b.owner.departedKeys('svc')).toEqual([key(3)]);
    for (const w of [a, b]) {
      w.step();
      w.set([0, 1, 2, 3]);
    }
    // Before: back at its whole share, failing, until the next report ejected it anew.
    lockstep(a, b, 12);
    expect(b.now).toBeGreaterThan(until);
  });

  it('a departed key of the last owner that the new owner still lists (the catalog reached them at other times) is ejected there', () => {
    const w = new World(4);
    w.step();
    w.eject(3);
    w.set([0, 1, 2]);
    w.step();
    const next = new WeightEngine();
    next.setCluster('svc', [0, 1, 2, 3].map((i) => ({ key: key(i), weight: 1 })), POLICY);
    w.members = [0, 1, 2, 3];
    w.handOver({ next });
    expect(next.departedKeys('svc')).toEqual([]);
    w.step();
    expect(w.of(3).health).toBe('UNHEALTHY');
    expect(w.of(3).rules).toContain('ejected');
  });

  it('the new owner\'s own, stale ejections give way to the last owner\'s verdict', () => {
    // A back-off that outlasts the error window many times over.
    const w = new World(4, { baseEjectionMs: 60_000, errorWindowMs: 2_000 });
    const first = w.owner;
    w.step();
    w.eject(2);
    w.faults.delete(2);
    // Taken over with nothing to import (an older replica's record, one too large): 2 serves again at once.
    w.handOver({ state: { version: 1, weights: {}, endpoints: {} } });
    w.until(back(w, 2));
    for (let k = 0; k < 10; k++) w.step();
    // Back to the first owner while its own verdict still runs: the last owner's says 2 is fine.
    w.handOver({ next: first });
    w.step();
    expect(w.of(2).health).toBe('HEALTHY');
    expect(w.of(2).rules).not.toContain('ejected');
  });
});

describe('an imported ejection stays within the new owner\'s bounds', () => {
  it('beyond its maxEjectedRatio, the shortest back-off left is released at its next tick, on probation', () => {
    const w = new World(6, { maxEjectedRatio: 0.34 });
    w.step();
    w.eject(4);
    w.step();
    w.eject(5);
    w.faults.clear();
    // Its successor allows one of six out.
    w.handOver({ next: w.replica({ maxEjectedRatio: 0.17 }) });
    w.step();
    expect(w.of(5).rules).toContain('ejected');
    expect(w.of(4).health).toBe('HEALTHY');
    expect(w.of(4).rules).toContain('probation');
    expect([...(w.last as ClusterTick).health.values()].filter((h) => h === 'UNHEALTHY')).toHaveLength(1);
  });

  it('never ejects the last endpoint that could serve', () => {
    const w = new World(2);
    w.step();
    w.eject(1);
    // On the new owner the other one is draining: 1 is all there is.
    w.declared.set(0, 'DRAINING');
    w.handOver();
    w.step();
    expect(w.of(1).rules).not.toContain('ejected');
    expect(w.of(1).health).toBe('HEALTHY');
  });

  for (const [what, skew] of [['ahead', 600_000], ['behind', -600_000]] as const) {
    it(`a new owner whose clock is 10 minutes ${what} holds the ejection for what it had left: no longer, no shorter`, () => {
      const [a, b] = twins(4);
      for (const w of [a, b]) {
        w.step();
        w.eject(3);
        for (let k = 0; k < 3; k++) w.step();
      }
      b.handOver({ skew });
      const [left, leftB] = [a.until(back(a, 3)), b.until(back(b, 3))];
      expect(left).toBe(7);
      expect(leftB).toBe(left);
    });
  }

  it('a record holding a longer ejection than maxEjectionMs is held no longer than it', () => {
    const w = new World(4, { maxEjectionMs: 60_000 });
    w.step();
    w.eject(3);
    w.faults.clear();
    const state = w.exported();
    const tampered = { ...state, ejections: { ...state.ejections, [key(3)]: { ...state.ejections?.[key(3)], forMs: 1e12, level: 40 } } } as ExportedClusterState;
    w.handOver({ state: tampered });
    expect(w.until(back(w, 3))).toBe(60);
  });
});

describe('records from other versions, corrupted or hostile', () => {
  /** An owner with endpoint 3 ejected for errors and 2 gone ejected (departed): its export. */
  function ejectedOwner(): World {
    const w = new World(6);
    w.step();
    w.faults.set(2, 'errors');
    w.faults.set(3, 'errors');
    w.until(() => ejected(w, 2)() && ejected(w, 3)());
    w.set([0, 1, 3, 4, 5]);
    w.step();
    return w;
  }

  const broken: [string, unknown][] = [
    ['not an object', 'x'],
    ['null', null],
    ['an array', [1]],
    ['a reason not a string', { reason: 7, level: 0, count: 1, onProbation: false, forMs: 5_000 }],
    ['an enormous reason', { reason: 'x'.repeat(5_000), level: 0, count: 1, onProbation: false, forMs: 5_000 }],
    ['a negative level', { reason: 'r', level: -1, count: 1, onProbation: false, forMs: 5_000 }],
    ['a fractional count', { reason: 'r', level: 0, count: 1.5, onProbation: false, forMs: 5_000 }],
    ['a level far beyond any back-off', { reason: 'r', level: 1e9, count: 1, onProbation: false, forMs: 5_000 }],
    ['a negative duration', { reason: 'r', level: 0, count: 1, onProbation: false, forMs: -1 }],
    ['an infinite duration', { reason: 'r', level: 0, count: 1, onProbation: false, forMs: Number.POSITIVE_INFINITY }],
    ['a release NaN ago', { reason: 'r', level: 0, count: 1, onProbation: false, releasedMsAgo: Number.NaN }],
    ['a release null ago', { reason: 'r', level: 0, count: 1, onProbation: false, releasedMsAgo: null }],
    ['probation not a boolean', { reason: 'r', level: 0, count: 1, onProbation: 'yes', forMs: 5_000 }],
  ];

  for (const [what, entry] of broken) {
    it(`an ejection entry with ${what} is skipped; the others are applied`, () => {
      const w = ejectedOwner();
      const state = w.exported();
      const bad = { ...state, ejections: { ...state.ejections, [key(0)]: entry } } as ExportedClusterState;
      const next = w.replica();
      expect(() => next.importClusterState('svc', bad, w.clock)).not.toThrow();
      w.handOver({ next, state: bad });
      w.step();
      expect(w.of(0).health).toBe('HEALTHY');
      expect(w.of(3).health).toBe('UNHEALTHY');
    });
  }

  for (const [what, value] of [['a string', 'x'], ['an array', [1, 2]], ['null', null], ['a number', 3]] as const) {
    it(`ejections or departed as ${what} are left out, the rest of the state imported`, () => {
      const w = ejectedOwner();
      const state = w.exported();
      for (const field of ['ejections', 'departed'] as const) {
        const next = w.replica();
        expect(next.importClusterState('svc', { ...state, [field]: value } as unknown as ExportedClusterState, w.clock)).toBe(Object.keys(state.endpoints).length);
      }
    });
  }

  it('an endpoint entry that is null, or endpoints that are no object, are skipped: no throw halfway, the ejections applied', () => {
    const w = ejectedOwner();
    const state = w.exported();
    for (const endpoints of [{ ...state.endpoints, [key(0)]: null }, null, 'x']) {
      const next = w.replica();
      expect(() => next.importClusterState('svc', { ...state, endpoints } as unknown as ExportedClusterState, w.clock)).not.toThrow();
      const t = next.tick(w.clock + 1_000).clusters.get('svc') as ClusterTick;
      expect(t.health.get(key(3))).toBe('UNHEALTHY');
    }
  });

  it('a departed entry without a valid keptMs is skipped', () => {
    const w = ejectedOwner();
    const state = w.exported();
    const departed = state.departed as Record<string, object>;
    for (const keptMs of [0, -5, 'soon', undefined]) {
      const next = w.replica();
      next.importClusterState('svc', { ...state, departed: { [key(2)]: { ...departed[key(2)], keptMs } } } as ExportedClusterState, w.clock);
      expect(next.departedKeys('svc')).toEqual([]);
    }
  });

  it('an export from a replica that predates them (no ejections, no departed) leaves the importer\'s own as they were', () => {
    const w = new World(4);
    const first = w.owner;
    w.step();
    w.eject(2);
    const until = w.of(2).ejection?.until;
    // Its successor knows nothing of the ejection: 2 serves there.
    w.handOver({ state: { version: 1, weights: {}, endpoints: {} } });
    w.step();
    const { version, weights, endpoints } = w.exported();
    w.handOver({ next: first, state: { version, weights, endpoints } });
    w.step();
    expect(w.of(2).ejection?.until).toBe(until);
  });
});
