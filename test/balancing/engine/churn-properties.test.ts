/**
 * An endpoint's state follows its key through every change of the endpoint set. Two engines see
 * the same keys, samples and probes; one lists its endpoints in a stable order (kept keys in
 * place, newcomers at the end), the other in an arbitrary one, re-permuted at arbitrary ticks, a
 * newcomer often taking a leaver's position, installed by setCluster, by prepareCluster with a
 * tick between preparation and commit, or deferred while a tick runs in steps. Whatever the
 * order, each key must get the same weight, health and explanation every tick.
 *
 * Fixed seeds; CHURN_SEED and CHURN_RUNS pick others (for a longer search by hand).
 */
import { describe, it } from 'vitest';
import fc from 'fast-check';
import { WeightEngine, type PreparedCluster } from '../../../src/balancing/engine/weight-engine.js';
import type { ClusterTick, EjectionSettings, EngineEndpoint, WeightingPolicy } from '../../../src/balancing/engine/types.js';
import { differences, keyOf, POLICIES, profileArb, shuffled, viewOf, World, type Profile } from './churn-world.js';

type Install = 'set' | 'prepare' | 'deferred';

interface SetEvent {
  readonly tick: number;
  /** Bit k: pool endpoint k is in the set after the event. */
  readonly members: number;
  /** Bit k: pool endpoint k's static weight is bumped by one (or back). */
  readonly bumps: number;
  /** Bit k: pool endpoint k's drain flips (a pod's readiness). */
  readonly drains: number;
  /** Bit k: pool endpoint k's locality flips. */
  readonly moves: number;
  /** Flips the error window (every state rebuilt from its predecessor) and the PID gains (its rows restart). */
  readonly window: boolean;
  readonly gains: boolean;
  /** Key-addressed writes of per-endpoint state after the set: seeded weights, or a hand-over (the stable engine's export imported into both). */
  readonly restore: 'none' | 'seed' | 'handover';
  readonly seed: number;
  /** How the arbitrary-order engine reorders: shuffled, or kept with newcomers in leavers' places. */
  readonly shuffle: boolean;
  readonly install: Install;
}

interface Scenario {
  readonly profiles: readonly Profile[];
  readonly policy: WeightingPolicy;
  readonly initial: number;
  readonly events: readonly SetEvent[];
  /** The arbitrary-order engine ticks in steps of this many endpoints (0: whole ticks). */
  readonly chunk: number;
}

const TICKS = 40;

/**
 * Asserts that `run` finds no difference (undefined) for any generated case; fixed seed and runs
 * unless CHURN_SEED / CHURN_RUNS say otherwise.
 */
function noDifference<T>(arb: fc.Arbitrary<T>, run: (x: T) => string | undefined, numRuns: number): void {
  fc.assert(
    fc.property(arb, (x) => {
      const found = run(x);
      if (found !== undefined) throw new Error(found);
    }),
    { seed: Number(process.env.CHURN_SEED ?? 42), numRuns: Number(process.env.CHURN_RUNS ?? numRuns), endOnFailure: false },
  );
}

/** A world of 3 to 6 endpoints under one policy. */
const worldArb = fc.record({ profiles: fc.array(profileArb, { minLength: 3, maxLength: 6 }), policy: fc.constantFrom(...POLICIES) });

const scenarioArb: fc.Arbitrary<Scenario> = fc
  .record({
    profiles: fc.array(profileArb, { minLength: 3, maxLength: 7 }),
    policy: fc.constantFrom(...POLICIES),
    initial: fc.integer({ min: 0, max: 127 }),
    events: fc.array(
      fc.record({
        tick: fc.integer({ min: 1, max: TICKS }),
        members: fc.integer({ min: 0, max: 127 }),
        bumps: fc.constantFrom(0, 0, 1, 6, 127),
        drains: fc.constantFrom(0, 0, 0, 1, 2, 12),
        moves: fc.constantFrom(0, 0, 0, 1, 5),
        window: fc.constantFrom(false, false, false, true),
        gains: fc.constantFrom(false, false, false, true),
        restore: fc.constantFrom<SetEvent['restore']>('none', 'none', 'none', 'seed', 'handover'),
        seed: fc.integer({ min: 1, max: 1 << 30 }),
        shuffle: fc.boolean(),
        install: fc.constantFrom<Install>('set', 'set', 'prepare', 'deferred'),
      }),
      { maxLength: 8 },
    ),
    chunk: fc.constantFrom(0, 0, 2, 3),
  })
  .map((s) => ({ ...s, events: [...s.events].sort((a, b) => a.tick - b.tick) }));

const membersOf = (mask: number, n: number): number[] => Array.from({ length: n }, (_, k) => k).filter((k) => ((mask >> k) & 1) === 1);

/** The stable order: kept keys where they were, newcomers appended. */
function stableOrder(prev: readonly number[], next: readonly number[]): number[] {
  return [...prev.filter((k) => next.includes(k)), ...next.filter((k) => !prev.includes(k))];
}

/** The arbitrary order: shuffled, or the previous one with newcomers in the leavers' places. */
function arbitraryOrder(prev: readonly number[], next: readonly number[], e: SetEvent): number[] {
  if (e.shuffle) return shuffled(next, e.seed);
  const newcomers = shuffled(next.filter((k) => !prev.includes(k)), e.seed);
  const order = prev.map((k) => (next.includes(k) ? k : newcomers.shift())).filter((k): k is number => k !== undefined);
  return [...order, ...newcomers];
}

/** Runs both engines through the scenario; the first tick whose per-key outcomes differ, if any. */
function runPair(s: Scenario): string | undefined {
  const world = new World(s.profiles);
  const n = s.profiles.length;
  const options = { health: { baseBackoffMs: 4_000 } };
  const stable = new WeightEngine(options);
  const arbitrary = new WeightEngine(options);
  let members = membersOf(s.initial, n);
  if (members.length === 0) members = [0];
  let stableKs = members;
  let arbitraryKs = shuffled(members, s.initial + 1);
  let bumps = 0;
  let drains = 0;
  let moves = 0;
  let window = false;
  let gains = false;
  const endpoints = (ks: readonly number[]) => ks.map((k) => world.endpoint(k, { weightBump: (bumps >> k) & 1, undrain: ((drains >> k) & 1) === 1, moved: ((moves >> k) & 1) === 1 }));
  const policyNow = (): WeightingPolicy => (gains && s.policy.kind !== 'static' ? { ...s.policy, gains: { kp: 0.3, ki: 0.05 } } as WeightingPolicy : s.policy);
  const ejectionNow = () => (window ? { errorWindowMs: 8_000 } : undefined);
  stable.setCluster('svc', endpoints(stableKs), s.policy);
  arbitrary.setCluster('svc', endpoints(arbitraryKs), s.policy);
  for (let t = 1; t <= TICKS; t++) {
    const events = s.events.filter((e) => e.tick === t);
    // Changes installed before the tick's samples ('set'), after its tick ('prepare': prepared
    // before the samples and the tick, committed after; 'deferred': while the tick runs in steps).
    const after: SetEvent[] = [];
    for (const e of events) {
      let next = membersOf(e.members, n);
      if (next.length === 0) next = members;
      const nextStable = stableOrder(stableKs, next);
      const nextArbitrary = arbitraryOrder(arbitraryKs, next, e);
      members = next;
      bumps ^= e.bumps;
      drains ^= e.drains;
      moves ^= e.moves;
      window = window !== e.window;
      gains = gains !== e.gains;
      if (e.install === 'set') {
        stable.setCluster('svc', endpoints(nextStable), policyNow(), undefined, ejectionNow());
        arbitrary.setCluster('svc', endpoints(nextArbitrary), policyNow(), undefined, ejectionNow());
        restore(stable, arbitrary, e, t);
      } else after.push(e);
      stableKs = nextStable;
      arbitraryKs = nextArbitrary;
    }
    const prepared = after.filter((e) => e.install === 'prepare').length > 0 ? prepare(arbitrary, endpoints(arbitraryKs), policyNow(), ejectionNow()) : undefined;
    const all = Array.from({ length: n }, (_, k) => k);
    world.feed(stable, all, t);
    world.feed(arbitrary, all, t);
    const a = stable.tick(t * 1_000).clusters.get('svc');
    const deferredSet = after.some((e) => e.install === 'deferred') ? () => arbitrary.setCluster('svc', endpoints(arbitraryKs), policyNow(), undefined, ejectionNow()) : undefined;
    // A preparation committed while the tick runs in steps (deferred to its end), or after it.
    const commitMidTick = prepared !== undefined && s.chunk > 0 && t % 2 === 0;
    const midTick = commitMidTick ? () => (deferredSet?.(), arbitrary.commitCluster(prepared)) : deferredSet;
    const b = tickArbitrary(arbitrary, t * 1_000, s.chunk, midTick);
    if (after.length > 0) stable.setCluster('svc', endpoints(stableKs), policyNow(), undefined, ejectionNow());
    if (prepared !== undefined && !commitMidTick) arbitrary.commitCluster(prepared);
    const diff = differences(viewOf(a), viewOf(b));
    if (diff.length > 0) return `tick ${t}: ${diff.slice(0, 6).join('; ')}`;
  }
  return undefined;
}

function prepare(engine: WeightEngine, eps: readonly EngineEndpoint[], policy: WeightingPolicy, ejection?: Partial<EjectionSettings>): PreparedCluster {
  const steps = engine.prepareCluster('svc', eps, policy, { chunk: 2, ...(ejection !== undefined ? { ejection } : {}) });
  for (;;) {
    const step = steps.next();
    if (step.done === true) return step.value;
  }
}

/** The event's key-addressed restore, the same on both engines (`t`: the tick it comes before). */
function restore(stable: WeightEngine, arbitrary: WeightEngine, e: SetEvent, t: number): void {
  if (e.restore === 'seed') {
    const weights = new Map(Array.from({ length: 8 }, (_, k) => [keyOf(k), 1 + ((k * 7 + e.seed) % 13)] as const));
    for (const engine of [stable, arbitrary]) engine.seedWeights('svc', weights);
  } else if (e.restore === 'handover') {
    const exported = stable.exportClusterState('svc');
    if (exported !== undefined) for (const engine of [stable, arbitrary]) engine.importClusterState('svc', exported, t * 1_000 - 500);
  }
}

/** A tick of the arbitrary-order engine: whole, or in steps with `midTick` called after the first step. */
function tickArbitrary(engine: WeightEngine, now: number, chunk: number, midTick: (() => void) | undefined): ClusterTick | undefined {
  if (chunk === 0 && midTick === undefined) return engine.tick(now).clusters.get('svc');
  const run = engine.startClusterTick(now, 'svc', chunk === 0 ? 2 : chunk);
  let done = run.step();
  midTick?.();
  while (!done) done = run.step();
  return run.result;
}

describe('per-key state follows the key through reorders, joins and leaves', () => {
  it('an engine listing its endpoints in arbitrary, changing orders publishes what a stable-order one does, key for key', () => {
    noDifference(scenarioArb, runPair, 120);
  });
});

/** A member that comes and goes between two ticks: `ki` joins at position `at` and leaves before the next tick. */
interface Visit {
  readonly tick: number;
  readonly at: number;
  /** Its samples and probes arrive while it is a member. */
  readonly fed: boolean;
  readonly install: Install;
}

const visitsArb = fc.array(
  fc.record({ tick: fc.integer({ min: 1, max: TICKS }), at: fc.nat(), fed: fc.boolean(), install: fc.constantFrom<Install>('set', 'prepare', 'deferred') }),
  { minLength: 1, maxLength: 5 },
);

/** The first tick at which an engine with the visits differs from one that never saw the visitor. */
function runVisits(profiles: readonly Profile[], policy: WeightingPolicy, visits: readonly Visit[]): string | undefined {
  const world = new World(profiles);
  const visitor = profiles.length - 1;
  const members = Array.from({ length: visitor }, (_, k) => k);
  const options = { health: { baseBackoffMs: 4_000 } };
  const [plain, visited] = [new WeightEngine(options), new WeightEngine(options)];
  const base = members.map((k) => world.endpoint(k));
  for (const e of [plain, visited]) e.setCluster('svc', base, policy);
  for (let t = 1; t <= TICKS; t++) {
    const visit = visits.find((v) => v.tick === t);
    const call = (): void => {
      if (visit === undefined) return;
      const withVisitor = [...base];
      withVisitor.splice(visit.at % (base.length + 1), 0, world.endpoint(visitor));
      if (visit.install === 'prepare') visited.commitCluster(prepare(visited, withVisitor, policy));
      else visited.setCluster('svc', withVisitor, policy);
      if (visit.fed) world.feedOne(visited, visitor, t);
      visited.setCluster('svc', base, policy);
    };
    const deferred = visit?.install === 'deferred';
    // The same set written to the twin at the same moment (a write forces the next publish).
    if (visit !== undefined && !deferred) {
      call();
      plain.setCluster('svc', base, policy);
    }
    world.feed(plain, members, t);
    world.feed(visited, members, t);
    const a = plain.tick(t * 1_000).clusters.get('svc');
    const b = tickArbitrary(visited, t * 1_000, deferred ? 2 : 0, deferred ? call : undefined);
    if (deferred) plain.setCluster('svc', base, policy);
    const diff = differences(viewOf(a), viewOf(b));
    if (diff.length > 0) return `tick ${t}: ${diff.slice(0, 6).join('; ')}`;
  }
  return undefined;
}

describe('an endpoint that joins and leaves between two ticks leaves no trace', () => {
  it('the others publish what they would have without it, with or without its samples', () => {
    noDifference(fc.tuple(worldArb, visitsArb), ([w, visits]) => runVisits(w.profiles, w.policy, visits), 60);
  });
});

/**
 * How long the engines of runComeback remember a departed key's back-off (departed.ts): at most
 * maxEjectionMs, and the probes' maxBackoffMs, after it left. Short, so that keys come back both
 * within and after it in a 40-tick run.
 */
const COMEBACK_OPTIONS = { health: { baseBackoffMs: 4_000, maxBackoffMs: 8_000 }, ejection: { maxEjectionMs: 12_000 } };
const MEMORY_TICKS = 12;

/**
 * Endpoint 0 of the pool leaves at `leave` and its key comes back at `back` (positions `at`),
 * against a twin to which a key never seen joins instead, with the same inputs from then on.
 *
 * A key that left with a back-off running (ejected, probed down, or released recently enough that
 * a relapse would still double) is remembered and resumes it (departed.ts): this property once
 * said that every comeback starts fresh, which let a crash-looping backend escape its back-off by
 * being removed and listed again. What still holds: a key that left with nothing remembered, or
 * came back after the memory's bound, is a stranger in every respect; and a remembered one is, on
 * its first tick back, held out wherever the stranger is (its back-off only holds it out longer).
 */
function runComeback(profiles: readonly Profile[], policy: WeightingPolicy, r: { leave: number; back: number; at: number }): string | undefined {
  const world = new World(profiles);
  const n = profiles.length;
  const [returning, stranger] = [new WeightEngine(COMEBACK_OPTIONS), new WeightEngine(COMEBACK_OPTIONS)];
  // The stranger's key sorts where the returning one's does (ties between equal endpoints go by key).
  const strangerKey = keyOf(0).replace(':80', ':81');
  const others = Array.from({ length: n - 1 }, (_, j) => world.endpoint(j + 1));
  const withKey = (key: string): EngineEndpoint[] => {
    const eps = [...others];
    eps.splice(r.at % n, 0, world.endpoint(0, {}, key));
    return eps;
  };
  for (const e of [returning, stranger]) e.setCluster('svc', withKey(keyOf(0)), policy);
  const back = Math.max(r.leave, r.back);
  let remembered = false;
  for (let t = 1; t <= TICKS; t++) {
    if (t === r.leave) {
      for (const e of [returning, stranger]) e.setCluster('svc', others, policy);
      remembered = returning.departedKeys('svc').includes(keyOf(0)) && back - r.leave < MEMORY_TICKS;
    }
    if (t === back) {
      returning.setCluster('svc', withKey(keyOf(0)), policy);
      stranger.setCluster('svc', withKey(strangerKey), policy);
    }
    world.feed(returning, Array.from({ length: n }, (_, k) => k), t);
    world.feed(stranger, Array.from({ length: n - 1 }, (_, j) => j + 1), t);
    world.feedOne(stranger, 0, t, t >= back ? strangerKey : keyOf(0));
    const ta = returning.tick(t * 1_000).clusters.get('svc');
    const tb = stranger.tick(t * 1_000).clusters.get('svc');
    if (remembered && t >= back) {
      const held = ta?.health.get(keyOf(0)) === 'UNHEALTHY' || tb?.health.get(strangerKey) !== 'UNHEALTHY';
      if (t === back && !held) return `tick ${t}: the stranger is held out, the remembered key serves`;
      continue;
    }
    const a = viewOf(ta);
    const b = viewOf(tb);
    const renamed = Object.fromEntries(Object.entries(b).map(([k, v]) => [k === strangerKey ? keyOf(0) : k, v]));
    const diff = differences(a, renamed);
    if (diff.length > 0) return `tick ${t}: ${diff.slice(0, 6).join('; ')}`;
  }
  return undefined;
}

describe('a key that leaves and comes back starts as a key never seen, but for the back-off it left with', () => {
  it('its weight, health and explanation, and everyone else\'s, are what a newcomer in its place would get, unless it is remembered (then it is held out at least as long)', () => {
    const when = fc.record({ leave: fc.integer({ min: 1, max: TICKS }), back: fc.integer({ min: 1, max: TICKS }), at: fc.nat() });
    noDifference(fc.tuple(worldArb, when), ([w, r]) => runComeback(w.profiles, w.policy, r), 60);
  });
});

/** A write of the cluster between two ticks that changes nothing a tick reads but the order, or the localities. */
interface Rewrite {
  readonly tick: number;
  readonly seed: number;
  readonly shuffle: boolean;
  /** Bit k: pool endpoint k moves to another locality (integer conversion groups only). */
  readonly moves: number;
  /** Bit k: pool endpoint k's weight is written changed, then back, before the tick. */
  readonly flips: number;
  readonly install: Install;
}

const rewritesArb = fc.array(
  fc.record({
    tick: fc.integer({ min: 1, max: TICKS }),
    seed: fc.integer({ min: 1, max: 1 << 30 }),
    shuffle: fc.boolean(),
    moves: fc.constantFrom(0, 0, 1, 6),
    flips: fc.constantFrom(0, 0, 0, 2),
    install: fc.constantFrom<Install>('set', 'prepare', 'deferred'),
  }),
  { minLength: 1, maxLength: 6 },
);

/** The first tick at which an engine given the rewrites differs from one never written again. */
function runRewrites(profiles: readonly Profile[], policy: WeightingPolicy, rewrites: readonly Rewrite[]): string | undefined {
  const world = new World(profiles);
  const all = Array.from({ length: profiles.length }, (_, k) => k);
  // No hysteresis: the push a write forces is then what the untouched twin publishes anyway, but for
  // the integers: a hold reuses them, a push converts every endpoint's real weight again, the fair
  // shares of those out of rotation too, which moves the common scale. The real ones are compared.
  const options = { health: { baseBackoffMs: 4_000 }, safety: { hysteresis: 0 } };
  const [untouched, written] = [new WeightEngine(options), new WeightEngine(options)];
  for (const e of [untouched, written]) e.setCluster('svc', all.map((k) => world.endpoint(k)), policy);
  let order = all;
  for (let t = 1; t <= TICKS; t++) {
    const r = rewrites.find((x) => x.tick === t);
    const write = (): void => {
      if (r === undefined) return;
      order = r.shuffle ? shuffled(order, r.seed) : order;
      const eps = (bump: number): EngineEndpoint[] => order.map((k) => world.endpoint(k, { weightBump: ((bump >> k) & 1) * 3, moved: ((r.moves >> k) & 1) === 1 }));
      if (r.flips !== 0) written.setCluster('svc', eps(r.flips), policy);
      if (r.install === 'prepare') written.commitCluster(prepare(written, eps(0), policy));
      else written.setCluster('svc', eps(0), policy);
    };
    if (r?.install !== 'deferred') write();
    world.feed(untouched, all, t);
    world.feed(written, all, t);
    const a = untouched.tick(t * 1_000).clusters.get('svc');
    const b = tickArbitrary(written, t * 1_000, r?.install === 'deferred' ? 2 : 0, r?.install === 'deferred' ? write : undefined);
    const diff = differences(viewOf(a), viewOf(b), false);
    if (diff.length > 0) return `tick ${t}: ${diff.slice(0, 6).join('; ')}`;
  }
  return undefined;
}

describe('a write that changes only the order or the localities keeps every endpoint\'s state', () => {
  it('the written engine publishes what an engine never written again does', () => {
    noDifference(fc.tuple(worldArb, rewritesArb), ([w, rewrites]) => runRewrites(w.profiles, w.policy, rewrites), 60);
  });
});
