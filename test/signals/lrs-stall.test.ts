/**
 * Load reports → the counts the engine's stall rule reads (src/balancing/engine/tick/stall.ts):
 * each endpoint's successes, and its peers' in-progress and completions as the proxies that call
 * it see them; none when another replica's proxies hold part of its traffic.
 */
import { describe, expect, it } from 'vitest';
import { LrsAggregator, PARTIAL_SUMS_LENGTH } from '../../src/signals/lrs-aggregator.js';
import type { WireLoadStatsRequest } from '../../src/signals/lrs-codec.js';
import { SignalStore, type Sample } from '../../src/signals/signal-store.js';
import { WeightEngine } from '../../src/balancing/engine/weight-engine.js';
import type { ClusterTick } from '../../src/balancing/engine/types.js';

const INTERVAL = 2_000;
const [X, Y, Z] = ['10.0.0.1:80', '10.0.0.2:80', '10.0.0.3:80'] as [string, string, string];

/** Per endpoint over one interval: issued, succeeded, failed, in progress at report time. */
type Counts = readonly [issued: number, succeeded: number, failed: number, inProgress: number];

function request(eps: ReadonlyMap<string, Counts>): WireLoadStatsRequest {
  return {
    cluster_stats: [
      {
        cluster_name: 'svc',
        load_report_interval: { seconds: INTERVAL / 1000 },
        upstream_locality_stats: [
          {
            upstream_endpoint_stats: [...eps].map(([key, [issued, ok, failed, inflight]]) => {
              const [address, port] = key.split(':');
              return {
                address: { socket_address: { address, port_value: Number(port) } },
                total_issued_requests: issued,
                total_successful_requests: ok,
                total_error_requests: failed,
                total_requests_in_progress: inflight,
              };
            }),
          },
        ],
      },
    ],
  };
}

const sampleOf = (agg: LrsAggregator, key: string, now: number) => agg.take(now).find((t) => t.key === key)?.sample;

describe('success counts in load-report samples', () => {
  it('per endpoint: successes per second; its peers: those that answered some, as the same proxy saw them', () => {
    const agg = new LrsAggregator();
    agg.apply(1, request(new Map<string, Counts>([[X, [80, 0, 20, 90]], [Y, [80, 70, 10, 8]], [Z, [80, 80, 0, 6]]])), 0, INTERVAL);
    const all = agg.take(0);
    const of = (k: string) => all.find((t) => t.key === k)?.sample;
    expect(of(X)).toMatchObject({ rps: 40, errors: 10, inflight: 90, successes: 0, peerInflight: 14, peerCompletions: 80 });
    // X answered none (its errors are timeouts): it is no peer of Y's (its pile would make the peers look slow).
    expect(of(Y)).toMatchObject({ successes: 35, peerInflight: 6, peerCompletions: 40 });
  });

  it('summed over the proxies that call it: a proxy calling only it vouches for no peer', () => {
    const agg = new LrsAggregator();
    agg.apply(1, request(new Map<string, Counts>([[X, [20, 0, 0, 40]]])), 0, INTERVAL);
    agg.apply(2, request(new Map<string, Counts>([[Y, [80, 80, 0, 8]], [Z, [80, 80, 0, 8]]])), 0, INTERVAL);
    expect(sampleOf(agg, X, 0)).toMatchObject({ successes: 0, peerInflight: 0, peerCompletions: 0 });
    agg.apply(2, request(new Map<string, Counts>([[X, [10, 10, 0, 1]], [Y, [80, 80, 0, 8]], [Z, [80, 80, 0, 8]]])), 100, INTERVAL);
    expect(sampleOf(agg, X, 100)).toMatchObject({ rps: 15, successes: 5, peerInflight: 16, peerCompletions: 80 });
  });

  it("another replica's sums (HA): the format it shares is unchanged, and the endpoint has no success counts", () => {
    const owner = new LrsAggregator();
    const other = new LrsAggregator();
    const eps = new Map<string, Counts>([[X, [80, 0, 0, 90]], [Y, [80, 80, 0, 8]]]);
    owner.apply(1, request(eps), 0, INTERVAL);
    other.apply(1, request(eps), 0, INTERVAL);
    const sent = other.partials(() => true);
    expect(sent.every((p) => p.sums.length === PARTIAL_SUMS_LENGTH && PARTIAL_SUMS_LENGTH === 13)).toBe(true);
    owner.take(0);
    for (const p of sent) expect(owner.applyPartial('other', p.cluster, p.key, p.sums, 10, 3 * INTERVAL)).toBe(true);
    const x = sampleOf(owner, X, 10);
    expect(x).toMatchObject({ rps: 80, inflight: 180 });
    expect(x?.successes).toBeUndefined();
    expect(owner.combined('svc', X, 10)?.peerCompletions).toBeUndefined();
  });
});

describe('the signal store passes them on', () => {
  it('to its listeners (the engine) and its ring, together and finite or not at all', () => {
    const store = new SignalStore({ now: () => 0 });
    const seen: Sample[] = [];
    store.subscribe((e) => void (e.kind === 'sample' && seen.push(e.sample)));
    store.record('svc', X, { at: 0, rps: 40, inflight: 90, successes: 0, peerInflight: 14, peerCompletions: 80, source: 'lrs' });
    store.record('svc', X, { at: 1, rps: 40, inflight: 90, successes: 0, peerInflight: Number.NaN, peerCompletions: 80 });
    store.record('svc', X, { at: 2, rps: 40, inflight: 90, successes: 1 });
    expect(seen[0]).toMatchObject({ successes: 0, peerInflight: 14, peerCompletions: 80 });
    expect(store.latest('svc', X)?.at).toBe(2);
    for (const x of seen.slice(1)) expect([x.successes, x.peerInflight, x.peerCompletions]).toEqual([undefined, undefined, undefined]);
  });
});

describe('load reports → the engine: a hung backend out, a proxy with other traffic left alone', () => {
  /** Reports from `proxies(r)` (stream id → endpoints) every interval, flushed into an engine; whether X was ever ejected. */
  function xEjected(proxies: (r: number) => ReadonlyMap<number, ReadonlyMap<string, Counts>>): boolean {
    const agg = new LrsAggregator();
    const engine = new WeightEngine();
    engine.setCluster('svc', [X, Y, Z].map((key) => ({ key, weight: 1 })), { kind: 'pid', setpoint: 'mean' });
    let ejected = false;
    for (let r = 1; r <= 8; r++) {
      const now = r * INTERVAL;
      for (const [stream, eps] of proxies(r)) agg.apply(stream, request(eps), now, INTERVAL);
      for (const t of agg.take(now)) engine.observeSample(t.cluster, t.key, t.sample);
      const tick = engine.tick(now).clusters.get('svc') as ClusterTick;
      ejected ||= tick.health.get(X) === 'UNHEALTHY';
    }
    return ejected;
  }
  const fast: Counts = [80, 80, 0, 8];

  it('one proxy calls all three; X hangs from the third interval: out', () => {
    expect(xEjected((r) => new Map([[1, new Map<string, Counts>([[X, r < 3 ? fast : [80, 0, 0, 8 + 80 * (r - 2)]], [Y, fast], [Z, fast]])]]))).toBe(true);
  });

  it('X hangs and its oldest requests already time out in the first report that shows it: out', () => {
    expect(xEjected((r) => new Map([[1, new Map<string, Counts>([[X, r < 3 ? fast : [80, 0, 30, 8 + 50 * (r - 2)]], [Y, fast], [Z, fast]])]]))).toBe(true);
  });

  it('two proxies, both calling X; X hangs: out', () => {
    const eps = (r: number) => new Map<string, Counts>([[X, r < 3 ? fast : [40, 0, 0, 4 + 40 * (r - 2)]], [Y, fast], [Z, fast]]);
    expect(xEjected((r) => new Map([[1, eps(r)], [2, eps(r)]]))).toBe(true);
  });

  it('proxy 1 calls only X with long-lived streams (none ends yet); proxy 2 calls Y and Z, fast: X stays', () => {
    expect(xEjected((r) => new Map([[1, new Map<string, Counts>([[X, [20, 0, 0, 40 * r]]])], [2, new Map<string, Counts>([[Y, fast], [Z, fast]])]]))).toBe(false);
  });
});
