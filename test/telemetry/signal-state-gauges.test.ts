/**
 * The gauges an SRE alerts on when signals stop: fulcrum_cluster_signals_not_fresh (endpoints
 * steering on held, decaying or absent data) and fulcrum_cluster_fail_static, read from a real
 * engine's ticks, with series only for the clusters in that state.
 */
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { freshnessCounts } from '../../src/balancing/engine/explanations.js';
import { parseConfig } from '../../src/sources/config-file.js';
import { registerSignalStates } from '../../src/telemetry/operator-metrics.js';
import { AdaptiveWeights } from '../../src/weights/adaptive-weights.js';

const ips = ['10.7.0.1', '10.7.0.2', '10.7.0.3'];

function weights(): AdaptiveWeights {
  const catalog = parseConfig(
    JSON.stringify({
      clusters: [
        { name: 'steered', weighting: { policy: 'pid', metric: 'cpu' }, endpoints: ips.map((address) => ({ address, port: 80 })) },
        { name: 'fixed', endpoints: [{ address: '10.7.1.1', port: 80 }] },
      ],
    }),
    'signals.json',
  ).catalog;
  const a = new AdaptiveWeights();
  a.setCatalog(catalog);
  return a;
}

async function scrape(a: AdaptiveWeights): Promise<string[]> {
  const registry = new Registry();
  registerSignalStates(registry, { failStatic: () => a.failStaticClusters(), notFresh: () => a.signalsNotFresh() });
  return (await registry.metrics()).split('\n').filter((l) => l.startsWith('fulcrum_cluster_'));
}

describe('fail-static gauges', () => {
  it('count the endpoints whose data is stale, then expired, and the one that never sent any; none while every sample is fresh', async () => {
    const a = weights();
    const report = (at: number, which: readonly string[]) => which.forEach((ip, i) => a.observeSample('steered', `${ip}:80`, { at, cpu: 0.3 + i / 10 }));
    report(1_000, ips);
    a.tick(1_500);
    expect(await scrape(a)).toEqual([]);

    // Two endpoints report on; the third goes quiet past staleAfterMs (5 s): its weight is held.
    for (let t = 2_000; t <= 8_000; t += 1_000) {
      report(t, ips.slice(0, 2));
      a.tick(t + 500);
    }
    expect(await scrape(a)).toEqual(['fulcrum_cluster_signals_not_fresh{cluster="steered",freshness="stale"} 1']);

    // Past decayAfterMs (30 s) it decays to static: expired.
    report(40_000, ips.slice(0, 2));
    a.tick(40_500);
    expect(await scrape(a)).toEqual(['fulcrum_cluster_signals_not_fresh{cluster="steered",freshness="expired"} 1']);
    expect(a.failStaticClusters()).toEqual([]);
    // The count read from the tick's frame agrees with the explanations built one by one.
    const explanations = a.explain('steered')!.explanations;
    expect(freshnessCounts(new Map(explanations))).toEqual(freshnessCounts(explanations));
    expect(freshnessCounts(explanations)).toEqual({ fresh: 2, stale: 0, expired: 1, none: 0 });
  });

  it('an endpoint that never sent a sample counts as none; a cluster whose every endpoint fails its probes fails static', async () => {
    const a = weights();
    a.observeSample('steered', `${ips[0]}:80`, { at: 1_000, cpu: 0.5 });
    a.tick(1_500);
    expect(await scrape(a)).toEqual(['fulcrum_cluster_signals_not_fresh{cluster="steered",freshness="none"} 2']);

    for (let t = 2; t <= 4; t++) for (const ip of ips) a.observeProbe('steered', `${ip}:80`, { at: t * 1_000, ok: false });
    a.tick(4_500);
    expect(a.failStaticClusters()).toEqual(['steered']);
    expect(await scrape(a)).toContain('fulcrum_cluster_fail_static{cluster="steered"} 1');
    // The static cluster never has a series: it steers on nothing.
    expect((await scrape(a)).some((l) => l.includes('cluster="fixed"'))).toBe(false);
  });
});
