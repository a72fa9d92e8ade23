import { describe, expect, it } from 'vitest';
import { LrsAggregator } from '../../src/signals/lrs-aggregator.js';
import type { WireLoadStatsRequest } from '../../src/signals/lrs-codec.js';
import type { Sample } from '../../src/signals/signal-store.js';

const INTERVAL = 1000;
const CLUSTERS = ['a', 'b'];
const KEYS = ['10.0.0.1:80', '10.0.0.2:80', '10.0.0.3:80', '10.0.0.4:80'];

/** Deterministic pseudo-random in [0, 1). */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

interface Values {
  issued: number;
  failed: number;
  inflight: number;
  /** Requests with an ORCA cpu value, and their sum. */
  cpuCount: number;
  cpuTotal: number;
}

type Entries = Map<string, Map<string, Values>>;

function request(entries: Entries): WireLoadStatsRequest {
  return {
    cluster_stats: [...entries].map(([cluster, eps]) => ({
      cluster_name: cluster,
      load_report_interval: { seconds: INTERVAL / 1000 },
      upstream_locality_stats: [
        {
          upstream_endpoint_stats: [...eps].map(([key, v]) => {
            const [address, port] = key.split(':');
            return {
              address: { socket_address: { address, port_value: Number(port) } },
              total_issued_requests: v.issued,
              total_error_requests: v.failed,
              total_requests_in_progress: v.inflight,
              load_metric_stats: v.cpuCount > 0 ? [{ metric_name: 'cpu_utilization', num_requests_finished_with_metric: v.cpuCount, total_metric_value: v.cpuTotal }] : [],
            };
          }),
        },
      ],
    })),
  };
}

/**
 * What the aggregator promises, kept the plain way: per stream and cluster, the shares it holds
 * and until when they count; a combined sample summed from scratch.
 */
class Model {
  readonly streams = new Map<number, Map<string, { validUntil: number; shares: Map<string, Values & { zeroed: boolean }> }>>();

  apply(stream: number, entries: Entries, now: number): void {
    const clusters = this.streams.get(stream) ?? new Map();
    this.streams.set(stream, clusters);
    for (const [cluster, eps] of entries) {
      const shares = new Map<string, Values & { zeroed: boolean }>();
      for (const [key, v] of eps) shares.set(key, { ...v, zeroed: false });
      for (const [key, old] of clusters.get(cluster)?.shares ?? []) {
        if (eps.has(key) || old.zeroed) continue;
        shares.set(key, { issued: 0, failed: 0, inflight: 0, cpuCount: 0, cpuTotal: 0, zeroed: true });
      }
      clusters.set(cluster, { validUntil: now + 3 * INTERVAL, shares });
    }
  }

  combined(cluster: string, key: string, now: number): { rps: number; errors: number; inflight: number; cpu: number | undefined } | undefined {
    let fresh = 0;
    const sum = { rps: 0, errors: 0, inflight: 0, cpuCount: 0, cpuTotal: 0 };
    for (const clusters of this.streams.values()) {
      const c = clusters.get(cluster);
      const v = c?.shares.get(key);
      if (c === undefined || v === undefined || c.validUntil < now) continue;
      fresh++;
      sum.rps += v.issued / (INTERVAL / 1000);
      sum.errors += v.failed / (INTERVAL / 1000);
      sum.inflight += v.inflight;
      sum.cpuCount += v.cpuCount;
      sum.cpuTotal += v.cpuTotal;
    }
    if (fresh === 0) return undefined;
    return { rps: sum.rps, errors: sum.errors, inflight: sum.inflight, cpu: sum.cpuCount > 0 ? sum.cpuTotal / sum.cpuCount : undefined };
  }
}

function randomEntries(rand: () => number): Entries {
  const entries: Entries = new Map();
  for (const cluster of CLUSTERS) {
    if (rand() < 0.2) continue; // a report without this cluster: its shares age
    const eps = new Map<string, Values>();
    for (const key of KEYS) {
      if (rand() < 0.3) continue; // no traffic from this proxy: absent
      const issued = Math.floor(rand() * 50);
      // Now and then a share far larger than the rest, whose departure cancels most of a sum.
      const scale = rand() < 0.05 ? 1e12 : 1;
      const cpuCount = rand() < 0.5 ? issued : 0;
      eps.set(key, { issued: issued * scale, failed: Math.floor(rand() * issued), inflight: Math.floor(rand() * 5), cpuCount, cpuTotal: cpuCount * rand() * scale });
    }
    entries.set(cluster, eps);
  }
  return entries;
}

function expectSame(actual: Sample, expected: NonNullable<ReturnType<Model['combined']>>, what: string): void {
  const close = (a: number | undefined, e: number | undefined, field: string): void => {
    if (e === undefined) return void expect(a, `${what} ${field}`).toBeUndefined();
    expect(a, `${what} ${field}`).toBeDefined();
    expect(Math.abs((a as number) - e), `${what} ${field}: ${a} against ${e}`).toBeLessThanOrEqual(1e-9 * Math.max(1, Math.abs(e)));
  };
  close(actual.rps, expected.rps, 'rps');
  close(actual.errors, expected.errors, 'errors');
  close(actual.inflight, expected.inflight, 'inflight');
  close(actual.cpu, expected.cpu, 'cpu');
}

/**
 * `proxies` streams report one endpoint once per interval each, with the values `valuesOf` gives;
 * per interval, what a take hands over and what the model sums from scratch.
 */
function fleetOnOneEndpoint(
  proxies: number,
  intervals: number,
  valuesOf: (interval: number, stream: number, rand: () => number) => Values,
): { sample: Sample; expected: NonNullable<ReturnType<Model['combined']>> }[] {
  const rand = lcg(7);
  const agg = new LrsAggregator();
  const model = new Model();
  const key = KEYS[0] as string;
  const out: { sample: Sample; expected: NonNullable<ReturnType<Model['combined']>> }[] = [];
  let now = 0;
  for (let interval = 0; interval < intervals; interval++) {
    for (let stream = 1; stream <= proxies; stream++) {
      now += INTERVAL / proxies;
      const entries: Entries = new Map([['a', new Map([[key, valuesOf(interval, stream, rand)]])]]);
      agg.apply(stream, request(entries), now, INTERVAL);
      model.apply(stream, entries, now);
    }
    const taken = agg.take(now);
    expect(taken.length, `interval ${interval}`).toBe(1);
    out.push({ sample: (taken[0] as { sample: Sample }).sample, expected: model.combined('a', key, now) as NonNullable<ReturnType<Model['combined']>> });
  }
  return out;
}

describe('LrsAggregator', () => {
  it('hands over, at every take, the combined sample of every endpoint that changed, equal to the sum of its fresh shares', () => {
    for (const seed of [1, 2, 3, 4]) {
      const rand = lcg(seed);
      const agg = new LrsAggregator();
      const model = new Model();
      /** What was handed over last per endpoint, as the store would hold it. */
      const handed = new Map<string, Sample>();
      let now = 0;
      for (let step = 0; step < 400; step++) {
        now += Math.floor(rand() * 700);
        const stream = 1 + Math.floor(rand() * 5);
        if (rand() < 0.05) {
          agg.dropStream(stream);
          model.streams.delete(stream);
        } else {
          const entries = randomEntries(rand);
          agg.apply(stream, request(entries), now, INTERVAL);
          model.apply(stream, entries, now);
        }
        if (rand() < 0.4) continue; // several reports between two takes
        const taken = agg.take(now);
        expect(new Set(taken.map((t) => `${t.cluster} ${t.key}`)).size, 'each endpoint once per take').toBe(taken.length);
        for (const t of taken) {
          expect(t.sample.at, 'stamped when handed over').toBe(now);
          handed.set(`${t.cluster} ${t.key}`, t.sample);
        }
        for (const cluster of CLUSTERS) {
          for (const key of KEYS) {
            const expected = model.combined(cluster, key, now);
            const what = `seed ${seed} step ${step} ${cluster} ${key}`;
            if (expected === undefined) {
              expect(taken.some((t) => t.cluster === cluster && t.key === key), `${what}: no fresh share, nothing handed over`).toBe(false);
              expect(agg.combined(cluster, key, now), what).toBeUndefined();
              continue;
            }
            const last = handed.get(`${cluster} ${key}`);
            expect(last, `${what}: handed over`).toBeDefined();
            expectSame(last as Sample, expected, what);
            expectSame(agg.combined(cluster, key, now) as Sample, expected, `${what} (combined)`);
          }
        }
      }
    }
  });

  it('keeps the sums exact within 1e-9 when thousands of proxies report an endpoint for many intervals, outliers coming and going', () => {
    const intervals = fleetOnOneEndpoint(2_000, 8, (interval, stream, rand) => {
      const issued = Math.floor(rand() * 50);
      // In the first interval a few shares far larger than the rest, whose replacement cancels most of the sum.
      const scale = interval === 0 && stream % 500 === 0 ? 1e15 : rand() < 0.5 ? 1e-3 : 1;
      return { issued: issued * scale, failed: Math.floor(rand() * issued), inflight: Math.floor(rand() * 5), cpuCount: issued, cpuTotal: issued * rand() * scale };
    });
    intervals.forEach(({ sample, expected }, i) => expectSame(sample, expected, `interval ${i}`));
  });

  it('a sum brought down from 1e15 in two steps, neither cancelling enough alone, is exact again within an interval', () => {
    const intervals = fleetOnOneEndpoint(300, 6, (interval, stream, rand) => {
      const issued = 10 + Math.floor(rand() * 40);
      // A 1e15 share leaves while a 1e8 one still holds the sum above CANCELLED of it; then that one leaves.
      const cpuTotal = interval < 2 && stream === 1 ? 1e15 * (1 + rand()) : interval < 2 && stream === 2 ? 1e8 : issued * rand();
      return { issued, failed: 0, inflight: 0, cpuCount: issued, cpuTotal };
    });
    intervals.slice(3).forEach(({ sample, expected }, i) => expectSame(sample, expected, `interval ${i + 3}`));
  });

  it('hands an endpoint over once per take, however many proxies reported it since, and nothing when nothing changed', () => {
    const agg = new LrsAggregator();
    const entries: Entries = new Map([['a', new Map([[KEYS[0] as string, { issued: 10, failed: 0, inflight: 1, cpuCount: 10, cpuTotal: 5 }]])]]);
    for (let stream = 1; stream <= 50; stream++) agg.apply(stream, request(entries), stream, INTERVAL);
    const taken = agg.take(60);
    expect(taken).toHaveLength(1);
    expect(taken[0]?.sample).toMatchObject({ at: 60, rps: 500, errors: 0, inflight: 50, source: 'lrs' });
    expect(taken[0]?.sample.cpu).toBeCloseTo(0.5, 12);
    expect(agg.take(70)).toEqual([]);
    // A closed stream's share leaves the sum, handed over at the take's time.
    agg.dropStream(7);
    expect(agg.take(80)).toEqual([{ cluster: 'a', key: KEYS[0], sample: expect.objectContaining({ at: 80, rps: 490, inflight: 49 }) }]);
  });

  it('keeps no share of an endpoint the catalog does not know', () => {
    const agg = new LrsAggregator({ knows: (_cluster, key) => key !== KEYS[1] });
    const v = { issued: 10, failed: 0, inflight: 0, cpuCount: 0, cpuTotal: 0 };
    agg.apply(1, request(new Map([['a', new Map([[KEYS[0] as string, v], [KEYS[1] as string, v]])]])), 0, INTERVAL);
    expect(agg.take(0).map((t) => t.key)).toEqual([KEYS[0]]);
    expect(agg.combined('a', KEYS[1] as string, 0)).toBeUndefined();
  });

  it("adds other replicas' sums to its own, sends only its own, and lets theirs expire unless renewed", () => {
    const v = (issued: number, inflight: number, cpu: number): Values => ({ issued, failed: 1, inflight, cpuCount: issued, cpuTotal: issued * cpu });
    const one = (x: Values): Entries => new Map([['a', new Map([[KEYS[0] as string, x]])]]);
    const owner = new LrsAggregator();
    const other = new LrsAggregator();
    owner.apply(1, request(one(v(10, 2, 0.2))), 0, INTERVAL);
    other.apply(1, request(one(v(30, 5, 0.6))), 0, INTERVAL);
    const sent = other.partials(() => true);
    expect(sent.map((p) => [p.cluster, p.key])).toEqual([['a', KEYS[0]]]);
    expect(other.partials(() => true)).toEqual([]); // only what changed since
    for (const p of sent) expect(owner.applyPartial('other', p.cluster, p.key, p.sums, 100, 3 * INTERVAL)).toBe(true);
    const [t] = owner.take(100);
    expect(t?.sample).toMatchObject({ rps: 40, errors: 2, inflight: 7 });
    expect(t?.sample.cpu).toBeCloseTo((10 * 0.2 + 30 * 0.6) / 40, 12);
    // The owner's own part alone goes out (were it to lose the cluster): never the other's back.
    expect(owner.partials(() => true).map((p) => p.sums.slice(0, 3))).toEqual([[10, 1, 2]]);
    // Renewed by the other replica's next sums (replacing them, not adding); expired 3 intervals after the last.
    expect(owner.applyPartial('other', 'a', KEYS[0] as string, sent[0]!.sums, 200, 3 * INTERVAL)).toBe(true);
    owner.apply(1, request(one(v(10, 2, 0.2))), 2_000, INTERVAL);
    expect(owner.take(2_000)[0]?.sample.rps).toBe(40);
    // The next thing to expire is the other replica's renewed sums (not what they replaced, nor
    // the stream's first report): a flush is due then, traffic or not.
    expect(owner.nextExpiry()).toBe(3_200);
    owner.apply(1, request(one(v(10, 2, 0.2))), 3_300, INTERVAL);
    expect(owner.take(3_300)[0]?.sample).toMatchObject({ rps: 10, inflight: 2 });
    expect(owner.combined('a', KEYS[0] as string, 3_300)).toMatchObject({ rps: 10, inflight: 2 });
    // Sums that are not what partials makes are refused.
    for (const bad of [[1, 2], [-1, ...sent[0]!.sums.slice(1)], [...sent[0]!.sums.slice(0, -1), Number.NaN]]) {
      expect(owner.applyPartial('other', 'a', KEYS[0] as string, bad, 3_300, 3 * INTERVAL)).toBe(false);
    }
    // An endpoint known only through another replica is handed over, and forgotten once that expires.
    expect(owner.applyPartial('other', 'b', KEYS[2] as string, sent[0]!.sums, 4_000, 3 * INTERVAL)).toBe(true);
    expect(owner.take(4_000).find((x) => x.cluster === 'b')?.sample.rps).toBe(30);
    expect(owner.take(7_100).find((x) => x.cluster === 'b')).toBeUndefined();
    expect(owner.combined('b', KEYS[2] as string, 7_100)).toBeUndefined();
  });

  it("withdraws a replica's sums when its proxies leave or it stops, and sends a cluster whole once it no longer owns it", () => {
    const v: Values = { issued: 30, failed: 0, inflight: 5, cpuCount: 0, cpuTotal: 0 };
    const entries: Entries = new Map([['a', new Map([[KEYS[0] as string, v], [KEYS[1] as string, v]])]]);
    const owner = new LrsAggregator();
    const other = new LrsAggregator();
    other.apply(7, request(entries), 0, INTERVAL);
    // Owning 'a' itself, the other sends nothing of it; losing it, it sends every endpoint at once.
    expect(other.partials(() => false)).toEqual([]);
    other.apply(7, request(entries), 10, INTERVAL);
    expect(other.partials(() => false)).toEqual([]);
    const all = other.partials(() => true);
    expect(all.map((p) => p.key).sort()).toEqual([KEYS[0], KEYS[1]]);
    for (const p of all) owner.applyPartial('other', p.cluster, p.key, p.sums, 20, 3 * INTERVAL);
    expect(owner.take(20).map((t) => t.sample.rps)).toEqual([30, 30]);
    // Its proxy left: the other replica withdraws its sums (empty), the owner stops counting them at once.
    other.dropStream(7);
    const withdrawn = other.partials(() => true);
    expect(withdrawn.map((p) => [p.key, p.sums])).toEqual([[KEYS[0], []], [KEYS[1], []]]);
    expect(other.partials(() => true)).toEqual([]);
    expect(owner.applyPartial('other', 'a', KEYS[0] as string, [], 30, 3 * INTERVAL)).toBe(true);
    expect(owner.take(30)).toEqual([]);
    expect(owner.combined('a', KEYS[0] as string, 30)).toBeUndefined();
    // A replica that stopped (its key gone with its lease): all its sums go.
    owner.dropReplica('other');
    expect(owner.combined('a', KEYS[1] as string, 30)).toBeUndefined();
    expect(owner.nextExpiry()).toBeUndefined(); // nothing held: no flush due
  });

  it("takes another replica's sums with a negative ORCA total (a backend may report one), refuses malformed ones", () => {
    const owner = new LrsAggregator();
    const agg = new LrsAggregator();
    agg.apply(1, request(new Map([['a', new Map([[KEYS[0] as string, { issued: 10, failed: 0, inflight: 1, cpuCount: 10, cpuTotal: -5 }]])]])), 0, INTERVAL);
    const [p] = agg.partials(() => true);
    expect(owner.applyPartial('r', 'a', KEYS[0] as string, p!.sums, 0, 3 * INTERVAL)).toBe(true);
    expect(owner.take(0)[0]?.sample).toMatchObject({ rps: 10, inflight: 1 });
    const bad = [...p!.sums];
    bad[0] = -1; // a negative rate
    expect(owner.applyPartial('r', 'a', KEYS[0] as string, bad, 0, 3 * INTERVAL)).toBe(false);
    expect(owner.applyPartial('r', 'a', KEYS[0] as string, [...p!.sums, 0], 0, 3 * INTERVAL)).toBe(false);
    expect(owner.applyPartial('r', 'a', KEYS[0] as string, p!.sums.map(() => Number.POSITIVE_INFINITY), 0, 3 * INTERVAL)).toBe(false);
  });

  it('keeps nothing of clusters the catalog does not know, however many a report names', () => {
    const agg = new LrsAggregator({ knows: (cluster) => cluster === 'a' });
    const req: WireLoadStatsRequest = { cluster_stats: Array.from({ length: 1000 }, (_, i) => ({ cluster_name: `ghost-${i}`, load_report_interval: { seconds: 1 } })) };
    agg.apply(1, req, 0, INTERVAL);
    expect(agg.nextExpiry()).toBeUndefined();
    expect(agg.take(0)).toEqual([]);
  });

  it('keeps one expiry per stream and cluster however often it reports, and bounds what a claimed interval holds', () => {
    const agg = new LrsAggregator();
    const entries: Entries = new Map([['a', new Map([[KEYS[0] as string, { issued: 1, failed: 0, inflight: 0, cpuCount: 0, cpuTotal: 0 }]])]]);
    for (let t = 0; t <= 1_000; t += 10) agg.apply(1, request(entries), t, INTERVAL);
    expect(agg.nextExpiry()).toBe(1_000 + 3 * INTERVAL);
    expect(agg.take(1_000 + 3 * INTERVAL)).toHaveLength(1);
    expect(agg.take(1_000 + 3 * INTERVAL + 1)).toEqual([]); // expired: nothing to hand over, nothing held
    expect(agg.nextExpiry()).toBeUndefined();
    // A report claiming a 30-day interval holds its share for at most 10 asked intervals (× 3).
    const req = request(entries);
    req.cluster_stats![0]!.load_report_interval = { seconds: 30 * 86_400 };
    agg.apply(2, req, 0, INTERVAL);
    expect(agg.nextExpiry()).toBe(30 * INTERVAL);
  });

  it('takes rates over at least a tenth of the asked interval, so one proxy claiming a 1 µs interval cannot dilute the fleet\'s errors', () => {
    const agg = new LrsAggregator();
    const failing = (issued: number, failed: number): Entries =>
      new Map([['a', new Map([[KEYS[0] as string, { issued, failed, inflight: 0, cpuCount: 0, cpuTotal: 0 }]])]]);
    // Nine proxies: 100 requests in the asked interval (1 s), every one failed.
    for (let p = 0; p < 9; p++) agg.apply(p, request(failing(100, 100)), 0, INTERVAL);
    // One proxy claims its 10 successful requests took 1 µs: 1e7 a second as claimed.
    const liar = request(failing(10, 0));
    liar.cluster_stats![0]!.load_report_interval = { seconds: 0, nanos: 1_000 };
    agg.apply(9, liar, 0, INTERVAL);
    const [taken] = agg.take(1);
    // The liar's 10 requests count over 100 ms: 100 a second beside the fleet's 900, all failed.
    expect(taken?.sample).toMatchObject({ rps: 1_000, errors: 900 });
  });
});
