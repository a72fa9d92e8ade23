import { describe, expect, it, vi } from 'vitest';
import { WeightEngine } from '../../src/balancing/engine/weight-engine.js';
import { AdaptiveWeights } from '../../src/weights/adaptive-weights.js';
import { CatalogFeed } from '../../src/catalog/catalog-feed.js';
import type { Catalog } from '../../src/catalog/types.js';
import { cluster, endpoint } from '../catalog/helpers.js';
import { seededRandom } from '../../examples/backends/poisson-load.js';
import { publishedEndpoint } from '../../src/xds/translate-clusters.js';

const PID = { kind: 'pid', setpoint: 'mean', metric: 'cpu' } as const;
const catalogOf = (health: 'HEALTHY' | 'DRAINING', n = 3): Catalog => ({
  clusters: [cluster('web', Array.from({ length: n }, (_, i) => endpoint(`10.0.0.${i + 1}`, 8080, i === 1 ? { health } : {})), { weighting: PID })],
  listeners: [],
  nodeGroups: [],
});

/** A PID cluster of n endpoints, addressed by its name's first letter. */
const of = (name: string, n: number): Catalog['clusters'][number] => cluster(name, Array.from({ length: n }, (_, i) => endpoint(`10.${name.charCodeAt(0)}.0.${i + 1}`)), { weighting: PID });

describe('AdaptiveWeights', () => {
  it('a write to one cluster (the same names, one new object): that cluster set again, as a fresh engine given the catalog has it but for its newcomer, at a quarter', () => {
    const before: Catalog = { clusters: [of('a', 2), of('b', 2), of('c', 2)], listeners: [], nodeGroups: [] };
    const a = new AdaptiveWeights(new WeightEngine());
    a.setCatalog(before);
    a.tick(1_000);
    const after: Catalog = { ...before, clusters: [before.clusters[0], of('b', 3), before.clusters[2]] as Catalog['clusters'] };
    a.setCatalog(after);
    const fresh = new AdaptiveWeights(new WeightEngine());
    fresh.setCatalog(after);
    const [mine, theirs] = [a.tick(2_000), fresh.tick(2_000)];
    expect(mine?.get('b')?.size).toBe(3);
    for (const name of ['a', 'c']) expect([...(mine?.get(name) ?? a.current().get(name) ?? [])], name).toEqual([...(theirs?.get(name) ?? [])]);
    // b's endpoint added to a cluster that had ticked is a newcomer (tick/join.ts); a fresh engine's
    // first tick has no running fleet beside it and gives it a whole share.
    const [old, fresher] = [mine?.get('b'), theirs?.get('b')];
    for (const key of ['10.98.0.1:8080', '10.98.0.2:8080']) expect(old?.get(key), key).toEqual(fresher?.get(key));
    expect((old?.get('10.98.0.3:8080')?.weight ?? 0) / (fresher?.get('10.98.0.3:8080')?.weight ?? 1)).toBeCloseTo(0.25, 1);
    expect(a.publishedHealthOf('b')('10.98.0.3:8080')).toBe('HEALTHY');
  });

  it('clusters created and deleted (names added and removed): only they are told to the engine, and it ends as a fresh one given the catalog', () => {
    const before: Catalog = { clusters: [of('a', 2), of('c', 2), of('e', 2)], listeners: [], nodeGroups: [] };
    const engine = new WeightEngine();
    const a = new AdaptiveWeights(engine);
    a.setCatalog(before);
    a.tick(1_000);
    const set = vi.spyOn(engine, 'setCluster');
    const removed = vi.spyOn(engine, 'removeCluster');
    // b created between a and c, e deleted, a and c kept as they were.
    const after: Catalog = { ...before, clusters: [before.clusters[0], of('b', 4), before.clusters[1]] as Catalog['clusters'] };
    a.setCatalog(after);
    expect(set.mock.calls.map((call) => call[0])).toEqual(['b']);
    expect(removed.mock.calls.map((call) => call[0])).toEqual(['e']);
    const fresh = new AdaptiveWeights(new WeightEngine());
    fresh.setCatalog(after);
    const [mine, theirs] = [a.tick(2_000) ?? a.current(), fresh.tick(2_000) ?? fresh.current()];
    expect([...mine.keys()].sort()).toEqual(['a', 'b', 'c']);
    for (const name of ['a', 'b', 'c']) expect([...(mine.get(name) ?? [])], name).toEqual([...(theirs.get(name) ?? [])]);
    expect(a.publishedWeights('e')).toBeUndefined();
  });

  it('random creates, deletes and writes, ticked in between: each tick publishes what a fresh engine given the catalog publishes', () => {
    const r = seededRandom(11);
    let serial = 0;
    const made = (): Catalog['clusters'][number] => {
      const name = `c${Math.floor(r() * 1e5).toString(36)}-${serial++}`;
      const n = 1 + Math.floor(r() * 4);
      const endpoints = Array.from({ length: n }, (_, i) =>
        endpoint(`10.${serial % 250}.${i}.1`, 8080, { weight: 1 + Math.floor(r() * 5), ...(r() < 0.15 ? { health: 'DRAINING' as const } : {}) }));
      return cluster(name, endpoints, { weighting: r() < 0.7 ? PID : { kind: 'static' } });
    };
    const byName = (x: { name: string }, y: { name: string }): number => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0);
    let clusters = Array.from({ length: 6 }, made).sort(byName);
    const engine = new WeightEngine();
    const a = new AdaptiveWeights(engine);
    const everSeen = new Set<string>();
    // Ticks that published overrides (a static cluster's declared DRAINING ones carry none: buildOverrides).
    let compared = 0;
    for (let step = 0; step < 120; step++) {
      const op = r();
      if (op < 0.35 || clusters.length < 2) clusters = [...clusters, made()].sort(byName);
      else if (op < 0.6) clusters = clusters.filter((_, i) => i !== Math.floor(r() * clusters.length));
      else if (op < 0.8) {
        // A write: the same name, a new endpoint set.
        const k = Math.floor(r() * clusters.length);
        const next = made();
        clusters = clusters.map((c, i) => (i === k ? { ...next, name: c.name } : c));
      } else if (op < 0.85) clusters = [...clusters].reverse();
      const catalog: Catalog = { clusters, listeners: [], nodeGroups: [] };
      a.setCatalog(catalog);
      for (const c of clusters) everSeen.add(c.name);
      // The engine holds exactly the catalog's clusters: a deleted one is gone from it, not only from the output.
      for (const name of everSeen) expect(engine.hasCluster(name), `step ${step} ${name}`).toBe(clusters.some((c) => c.name === name));
      if (r() < 0.3) continue; // catalogs pile up between ticks
      const now = 1_000 * (step + 1);
      const fresh = new AdaptiveWeights(new WeightEngine());
      fresh.setCatalog(catalog);
      const [mine, theirs] = [a.tick(now) ?? a.current(), fresh.tick(now) ?? fresh.current()];
      // Clusters with nothing to override (static, none draining) have no entry in either.
      expect([...mine.keys()].sort(), `step ${step}`).toEqual([...theirs.keys()].sort());
      if (mine.size > 0) compared++;
      for (const c of clusters) expect([...(mine.get(c.name) ?? [])], `step ${step} ${c.name}`).toEqual([...(theirs.get(c.name) ?? [])]);
    }
    expect(compared).toBeGreaterThan(40);
  });

  it('publishedHealth: the declared DRAINING wins, follows catalog changes, and is undefined for unknown endpoints', () => {
    const a = new AdaptiveWeights(new WeightEngine());
    a.setCatalog(catalogOf('DRAINING'));
    a.tick(1_000);
    expect(a.publishedHealthOf('web')('10.0.0.2:8080')).toBe('DRAINING');
    expect(a.publishedHealthOf('web')('10.0.0.1:8080')).toBe('HEALTHY');
    expect(a.publishedHealthOf('web')('10.0.0.9:8080')).toBeUndefined();
    expect(a.publishedHealthOf('nope')('10.0.0.1:8080')).toBeUndefined();
    a.setCatalog(catalogOf('HEALTHY'));
    a.tick(2_000);
    expect(a.publishedHealthOf('web')('10.0.0.2:8080')).toBe('HEALTHY');
  });

  it('an endpoint declared UNHEALTHY and then HEALTHY again is in at once, not after the next tick, unless its probes fail', () => {
    // A Kubernetes pod ready again, an operator's enable after a drain: the catalog changes between
    // two ticks, and the overrides are the last tick's. The admin API's view says what proxies get.
    for (const weighting of [{ kind: 'static' } as const, PID]) {
      const at = (health: 'HEALTHY' | 'UNHEALTHY'): Catalog => ({
        clusters: [cluster('web', ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4'].map((ip, i) => endpoint(ip, 8080, i >= 2 ? { health } : {})), { weighting })],
        listeners: [],
        nodeGroups: [],
      });
      const sent = (a: AdaptiveWeights, c: Catalog, ip: string): string => {
        const e = c.clusters[0]!.endpoints.find((x) => x.address === ip)!;
        return publishedEndpoint(e, a.current().get('web')?.get(`${ip}:8080`)).endpoint.health;
      };
      const a = new AdaptiveWeights(new WeightEngine());
      a.setCatalog(at('HEALTHY'));
      // 10.0.0.4 fails its probes: out by the engine's own verdict.
      for (let i = 0; i < 5; i++) a.observeProbe('web', '10.0.0.4:8080', { ok: false, at: 100 * i });
      a.tick(1_000);
      a.setCatalog(at('UNHEALTHY'));
      a.tick(2_000);
      for (const ip of ['10.0.0.3', '10.0.0.4']) expect(sent(a, at('UNHEALTHY'), ip), `${weighting.kind} ${ip}`).toBe('UNHEALTHY');
      a.setCatalog(at('HEALTHY'));
      expect(sent(a, at('HEALTHY'), '10.0.0.3'), weighting.kind).toBe('HEALTHY');
      expect(sent(a, at('HEALTHY'), '10.0.0.4'), weighting.kind).toBe('UNHEALTHY');
      for (const ip of ['10.0.0.3', '10.0.0.4']) expect(a.publishedHealthOf('web')(`${ip}:8080`), `${weighting.kind} ${ip}`).toBe(sent(a, at('HEALTHY'), ip));
    }
  });

  it('keeps a cluster\'s overrides while its tick output is unchanged, and rebuilds them when it moves', () => {
    const a = new AdaptiveWeights(new WeightEngine());
    a.setCatalog(catalogOf('HEALTHY'));
    const first = a.tick(1_000)?.get('web');
    expect(first?.size).toBe(3);
    // No samples: nothing moves, the engine hands back the same output, and so do we.
    a.tick(2_000);
    expect(a.current().get('web')).toBe(first);
    a.observeSample('web', '10.0.0.1:8080', { at: 2_500, cpu: 0.9 });
    a.observeSample('web', '10.0.0.2:8080', { at: 2_500, cpu: 0.1 });
    a.observeSample('web', '10.0.0.3:8080', { at: 2_500, cpu: 0.5 });
    a.tick(3_000);
    a.tick(4_000);
    const moved = a.current().get('web');
    expect(moved).not.toBe(first);
    expect(moved?.get('10.0.0.1:8080')?.weight).toBeLessThan(first?.get('10.0.0.1:8080')?.weight as number);
    // A probe-failed endpoint of a static cluster is published UNHEALTHY without a weight.
    const s = new AdaptiveWeights(new WeightEngine());
    s.setCatalog({ ...catalogOf('HEALTHY'), clusters: [cluster('web', [endpoint('10.0.0.1'), endpoint('10.0.0.2')])] });
    for (let t = 1; t <= 3; t++) s.observeProbe('web', '10.0.0.1:8080', { ok: false, at: t * 100 });
    expect(s.tick(1_000)?.get('web')?.get('10.0.0.1:8080')).toEqual({ health: 'UNHEALTHY' });
  });

  it('a probe taken off a cluster lets the endpoints its probes had taken out back in: no probe, no verdict', () => {
    const probe = { kind: 'http', path: '/healthz', intervalMs: 2_000, timeoutMs: 1_000 } as const;
    const withProbe = (on: boolean): Catalog => ({
      ...catalogOf('HEALTHY'),
      clusters: [cluster('web', [endpoint('10.0.0.1'), endpoint('10.0.0.2')], on ? { probe } : {})],
    });
    const a = new AdaptiveWeights(new WeightEngine());
    a.setCatalog(withProbe(true));
    // A probe path the backend does not serve: its endpoint fails every probe and is taken out.
    for (let t = 1; t <= 3; t++) a.observeProbe('web', '10.0.0.1:8080', { ok: false, at: t * 100 });
    expect(a.tick(1_000)?.get('web')?.get('10.0.0.1:8080')).toEqual({ health: 'UNHEALTHY' });
    // The operator removes the probe: nothing probes the endpoint any more, so nothing can bring it
    // back, and nothing says it is ill. It was kept UNHEALTHY for good (until a restart).
    a.setCatalog(withProbe(false));
    a.tick(2_000);
    expect(a.publishedHealthOf('web')('10.0.0.1:8080')).toBe('HEALTHY');
    expect(a.tick(60_000)?.get('web')?.get('10.0.0.1:8080')).toBeUndefined();
    expect(a.current().get('web')?.get('10.0.0.1:8080')).toBeUndefined();
  });

  it("a static cluster's weight write publishes nothing from the next tick: its overrides carry no weights", () => {
    // What an operator's write then costs: one publication (the catalog's), not a second from the
    // tick, which restarted the publisher's quiet window (a change on a static cluster took up to
    // one window longer to reach the proxies: bench/RESULTS.md, engine17).
    const staticCluster = (weight: number): Catalog => ({
      ...catalogOf('HEALTHY'),
      clusters: [cluster('web', [endpoint('10.0.0.1', 8080, { weight }), endpoint('10.0.0.2')])],
    });
    const a = new AdaptiveWeights(new WeightEngine());
    a.setCatalog(staticCluster(1));
    a.tick(1_000);
    a.setCatalog(staticCluster(5));
    expect(a.tick(2_000)).toBeUndefined();
    // A probe failure is still published at once, and its recovery too.
    for (let t = 1; t <= 3; t++) a.observeProbe('web', '10.0.0.1:8080', { ok: false, at: 2_000 + t * 100 });
    expect(a.tick(3_000)?.get('web')?.get('10.0.0.1:8080')).toEqual({ health: 'UNHEALTHY' });
    expect(a.tick(4_000)).toBeUndefined();
    a.setCatalog(staticCluster(7));
    expect(a.tick(5_000)).toBeUndefined();
    expect(a.current().get('web')?.get('10.0.0.1:8080')).toEqual({ health: 'UNHEALTHY' });
    // Back after the 5 s back-off and three good probes: nothing to override, and that is published.
    for (let t = 0; t < 4; t++) a.observeProbe('web', '10.0.0.1:8080', { ok: true, at: 8_000 + t * 100 });
    const recovered = a.tick(9_000);
    expect(recovered).toBeDefined();
    expect(recovered?.has('web')).toBe(false);
  });

  it('a tick in slices publishes what one tick does, one slice per sliceEndpoints, and leaves out a cluster removed mid-tick', () => {
    const names = ['a', 'b', 'c', 'd', 'e'];
    const catalog: Catalog = {
      clusters: names.map((n, c) => cluster(n, Array.from({ length: 4 }, (_, i) => endpoint(`10.0.${c}.${i + 1}`, 8080)), { weighting: PID })),
      listeners: [],
      nodeGroups: [],
    };
    const whole = new AdaptiveWeights(new WeightEngine());
    const sliced = new AdaptiveWeights(new WeightEngine());
    for (const a of [whole, sliced]) a.setCatalog(catalog);
    const feed = (a: AdaptiveWeights, at: number): void =>
      names.forEach((n, c) => [1, 2, 3, 4].forEach((i) => a.observeSample(n, `10.0.${c}.${i}:8080`, { at, cpu: ((c + i * 7 + at / 1000) % 10) / 10 })));
    for (let t = 1; t <= 6; t++) {
      feed(whole, t * 1000 - 500);
      feed(sliced, t * 1000 - 500);
      const expected = whole.tick(t * 1000);
      // 8 endpoints per slice: two clusters of 4 each, so 5 clusters take 3 slices (2 yields).
      const run = sliced.tickInSlices(t * 1000, 8);
      let yields = 0;
      let step = run.next();
      for (; step.done !== true; step = run.next()) yields++;
      expect(yields).toBe(2);
      expect(step.value).toEqual(expected);
    }
    expect(sliced.current()).toEqual(whole.current());
    // Removed after the first slice: the finished tick does not publish it.
    const run = sliced.tickInSlices(7_000, 8);
    run.next();
    sliced.setCatalog({ ...catalog, clusters: catalog.clusters.filter((c) => c.name !== 'a') });
    let step = run.next();
    while (step.done !== true) step = run.next();
    expect([...sliced.current().keys()]).toEqual(['b', 'c', 'd', 'e']);
  });

  it('a cluster larger than a slice ticks in slices of its own, giving what one tick does; its samples mid-tick count after it', () => {
    const big: Catalog = {
      clusters: [
        cluster('small', [endpoint('10.1.0.1', 8080), endpoint('10.1.0.2', 8080)], { weighting: PID }),
        cluster('big', Array.from({ length: 30 }, (_, i) => endpoint(`10.0.0.${i + 1}`, 8080)), { weighting: PID }),
        { ...cluster('plain', Array.from({ length: 20 }, (_, i) => endpoint(`10.2.0.${i + 1}`, 8080))) },
      ],
      listeners: [],
      nodeGroups: [],
    };
    const whole = new AdaptiveWeights(new WeightEngine());
    const sliced = new AdaptiveWeights(new WeightEngine());
    for (const a of [whole, sliced]) a.setCatalog(big);
    const feed = (a: AdaptiveWeights, at: number): void => {
      for (let i = 1; i <= 30; i++) a.observeSample('big', `10.0.0.${i}:8080`, { at, cpu: ((i * 7 + at / 1000) % 10) / 10 });
      for (let i = 1; i <= 2; i++) a.observeSample('small', `10.1.0.${i}:8080`, { at, cpu: i / 4 });
      a.observeProbe('plain', '10.2.0.3:8080', { at, ok: false });
    };
    for (let t = 1; t <= 5; t++) {
      feed(whole, t * 1000 - 500);
      feed(sliced, t * 1000 - 500);
      const expected = whole.tick(t * 1000);
      // The next round's samples arrive while the tick runs: the whole tick saw them after it.
      feed(whole, t * 1000 + 100);
      const run = sliced.tickInSlices(t * 1000, 8);
      let slices = 1;
      let step = run.next();
      for (; step.done !== true; step = run.next()) if (slices++ === 6) feed(sliced, t * 1000 + 100);
      expect(slices).toBeGreaterThan(8);
      expect(step.value).toEqual(expected);
      expect(sliced.current()).toEqual(whole.current());
    }
    expect(sliced.current().get('plain')?.get('10.2.0.3:8080')).toEqual({ health: 'UNHEALTHY' });
  });

  it('a tick abandoned mid-cluster (return()) completes that cluster, so its changes apply at once again', () => {
    const big: Catalog = {
      clusters: [cluster('big', Array.from({ length: 30 }, (_, i) => endpoint(`10.0.0.${i + 1}`, 8080)), { weighting: PID })],
      listeners: [],
      nodeGroups: [],
    };
    const a = new AdaptiveWeights(new WeightEngine());
    a.setCatalog(big);
    a.tick(1_000);
    const run = a.tickInSlices(2_000, 8);
    run.next();
    run.next();
    run.return(undefined);
    a.setCatalog({ ...big, clusters: [] });
    // Removed now, not deferred to a tick in flight that nobody drives any more.
    expect(a.publishedWeights('big')).toBeUndefined();
  });

  it('a cluster taken over between slices keeps its published weights; one handed off mid-tick is not ticked here', () => {
    const names = ['a', 'b', 'c'];
    const catalog: Catalog = {
      clusters: names.map((n, c) => cluster(n, Array.from({ length: 4 }, (_, i) => endpoint(`10.0.${c}.${i + 1}`, 8080)), { weighting: PID })),
      listeners: [],
      nodeGroups: [],
    };
    const a = new AdaptiveWeights(new WeightEngine());
    a.setCatalog(catalog);
    const feed = (at: number): void =>
      names.forEach((n, c) => [1, 2, 3, 4].forEach((i) => a.observeSample(n, `10.0.${c}.${i}:8080`, { at, cpu: (c + i) / 10 })));
    for (let t = 1; t <= 3; t++) {
      feed(t * 1000 - 500);
      a.tick(t * 1000);
    }
    const published = a.current().get('a');
    expect(published?.size).toBe(4);
    // 'a' is someone else's when the tick reaches it and ours again after the first slice ('b').
    let ownsA = false;
    a.setOwnership((cluster) => cluster !== 'a' || ownsA);
    feed(3_500);
    const run = a.tickInSlices(4_000, 4);
    run.next();
    ownsA = true;
    let step = run.next();
    while (step.done !== true) step = run.next();
    // Not ticked in this tick, so nothing new for it, but not dropped to static weights either.
    expect(a.current().get('a')).toBe(published);
    expect(a.current().get('b')).not.toBe(undefined);
    expect([...a.current().keys()]).toEqual(['a', 'b', 'c']);
  });

  it('setCatalogSteps applies a catalog as setCatalog does, only at its last step, the big clusters prepared in steps', () => {
    const ip = (i: number): string => `10.1.${i >> 8}.${i & 255}`;
    const big = (from: number, to: number, weight: number): Catalog['clusters'][number] =>
      cluster('big', Array.from({ length: to - from }, (_, j) => endpoint(ip(from + j), 8080, { weight: weight + ((from + j) % 3) })), { weighting: PID });
    const small = catalogOf('HEALTHY').clusters[0] as Catalog['clusters'][number];
    const first: Catalog = { clusters: [small, big(0, 300, 10)], listeners: [], nodeGroups: [] };
    const next: Catalog = { clusters: [big(50, 400, 20)], listeners: [], nodeGroups: [] };
    const [stepped, whole] = [new AdaptiveWeights(new WeightEngine()), new AdaptiveWeights(new WeightEngine())];
    for (const a of [stepped, whole]) {
      a.setCatalog(first);
      for (let i = 0; i < 300; i += 7) a.observeSample('big', `${ip(i)}:8080`, { at: 500, cpu: (i % 10) / 10 });
      a.tick(1_000);
    }
    const steps = stepped.setCatalogSteps(next, 64);
    let count = 0;
    for (let s = steps.next(); s.done !== true; s = steps.next()) {
      count++;
      // Before the last step the old catalog is still the one ticked (web still there).
      expect(stepped.tick(1_000 + count)?.has('web') ?? stepped.current().has('web')).toBe(true);
      whole.tick(1_000 + count);
    }
    expect(count).toBeGreaterThan(350 / 64);
    whole.setCatalog(next);
    for (let t = 2_000; t <= 5_000; t += 1_000) {
      for (const a of [stepped, whole]) for (let i = 50; i < 400; i += 5) a.observeSample('big', `${ip(i)}:8080`, { at: t - 100, cpu: (i % 7) / 7 });
      expect(stepped.tick(t)).toEqual(whole.tick(t));
    }
    expect(stepped.current().has('web')).toBe(false);
    expect(stepped.current().get('big')?.size).toBe(350);
  });

  it('two big writes to one cluster overlapping in the catalog feed: the engine ends with the second, as if set whole', async () => {
    const ip = (i: number): string => `10.3.${i >> 8}.${i & 255}`;
    const big = (from: number, to: number, weight: number): Catalog => ({
      clusters: [cluster('big', Array.from({ length: to - from }, (_, j) => endpoint(ip(from + j), 8080, { weight })), { weighting: PID })],
      listeners: [],
      nodeGroups: [],
    });
    let current = big(0, 5_000, 10);
    const listeners = new Set<() => void>();
    const store = { catalog: () => current, onChange: (l: () => void) => (listeners.add(l), () => void listeners.delete(l)) };
    const change = (next: Catalog): void => {
      current = next;
      for (const l of listeners) l();
    };
    const stepped = new AdaptiveWeights(new WeightEngine());
    const feed = new CatalogFeed(store, [stepped]);
    feed.start();
    stepped.tick(1_000);
    const turn = () => new Promise((resolve) => setImmediate(resolve));
    change(big(1_000, 6_000, 20));
    for (let i = 0; i < 4; i++) await turn(); // the first write's preparation is under way
    stepped.tick(1_100);
    expect(stepped.current().get('big')?.has(`${ip(0)}:8080`)).toBe(true);
    change(big(2_000, 7_000, 30));
    for (let i = 0; i < 40; i++) await turn();
    feed.stop();
    const whole = new AdaptiveWeights(new WeightEngine());
    whole.setCatalog(big(0, 5_000, 10));
    whole.tick(1_000);
    whole.tick(1_100);
    whole.setCatalog(big(2_000, 7_000, 30));
    expect(stepped.tick(2_000)).toEqual(whole.tick(2_000));
    expect(stepped.current().get('big')?.size).toBe(5_000);
    expect(stepped.current().get('big')?.has(`${ip(6_999)}:8080`)).toBe(true);
  });
});

describe('AdaptiveWeights: weights restored at a restart', () => {
  const archived = new Map([
    ['10.0.0.1:8080', 10],
    ['10.0.0.2:8080', 30],
    ['10.0.0.3:8080', 60],
  ]);
  const weightsOf = (a: AdaptiveWeights): number[] => [...(a.current().get('web')?.values() ?? [])].map((o) => o.weight ?? 0);
  /** What the cluster starts from with nothing restored. */
  const static_ = (): AdaptiveWeights => {
    const fresh = new AdaptiveWeights(new WeightEngine());
    fresh.setCatalog(catalogOf('HEALTHY'));
    fresh.tick(1_000);
    return fresh;
  };

  // Kubernetes-discovered clusters are not stored: they reach the engine after discovery's first
  // sync, after the weight loop has resumed from the archive.
  it('a cluster that reaches the catalog after the weights were restored starts from them, not from static', () => {
    const a = new AdaptiveWeights(new WeightEngine());
    a.setCatalog({ clusters: [], listeners: [], nodeGroups: [] });
    a.seed('web', archived);
    a.tick(1_000);
    a.setCatalog(catalogOf('HEALTHY'));
    a.tick(2_000);
    // As a cluster present at the restore (a stored one) resumes.
    const stored = new AdaptiveWeights(new WeightEngine());
    stored.setCatalog(catalogOf('HEALTHY'));
    stored.seed('web', archived);
    stored.tick(2_000);
    expect(weightsOf(stored)).not.toEqual(weightsOf(static_()));
    expect(weightsOf(a)).toEqual(weightsOf(stored));
  });

  it('restored weights of a cluster still absent once every source has its first view are dropped: a later cluster of that name starts static', () => {
    const a = new AdaptiveWeights(new WeightEngine());
    a.setCatalog({ clusters: [], listeners: [], nodeGroups: [] });
    a.seed('web', archived);
    a.settleSeeds();
    a.setCatalog(catalogOf('HEALTHY'));
    a.tick(1_000);
    expect(weightsOf(a)).toEqual(weightsOf(static_()));
  });
});
