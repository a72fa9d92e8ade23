/**
 * /metrics built in turns (issue 13: at 100k endpoints the scrape was one task of 42–64 ms of CPU,
 * every other request waiting behind it): the per-endpoint values capped in steps, then one metric
 * per turn. The text must be what prom-client's own `registry.metrics()` (the former /metrics)
 * gives for the same state, byte for byte; sources by cluster must give the text flat ones give,
 * without walking the clusters the cap leaves out.
 */
import { describe, expect, it } from 'vitest';
import { capSteps, type ClusterEndpointValues, type EndpointValue } from '../../src/telemetry/endpoint-series.js';
import { Metrics } from '../../src/telemetry/metrics.js';

/** `clusters` clusters of `size` endpoints, in catalog order. */
function fleet(clusters: number, size: number): EndpointValue[] {
  return Array.from({ length: clusters * size }, (_, i) => {
    const c = Math.floor(i / size);
    return { cluster: `svc-${String(c).padStart(4, '0')}`, endpoint: `10.${c >> 8}.${c & 255}.${i % size}:8080`, value: (i % 7) + 1 };
  });
}

/** The same values by cluster, recording which clusters' values were read. */
function byCluster(values: readonly EndpointValue[], read: string[] = []): ClusterEndpointValues[] {
  const groups = new Map<string, EndpointValue[]>();
  for (const v of values) groups.set(v.cluster, [...(groups.get(v.cluster) ?? []), v]);
  return [...groups].map(([cluster, vs]) => ({
    cluster,
    size: vs.length,
    values: () => {
      read.push(cluster);
      return vs;
    },
  }));
}

/** A Metrics with a bit of everything observed: counters, histograms, per-endpoint gauges over their cap. */
function fixture(byClusters: boolean): Metrics {
  const metrics = new Metrics({ processMetrics: false, xdsTypes: ['CDS', 'EDS'], protocols: ['sotw', 'delta'], maxEndpointSeries: 25 });
  const weights = fleet(10, 10);
  const cpu = fleet(4, 3).map((v) => ({ ...v, value: v.value / 10 }));
  if (byClusters) {
    metrics.trackEndpointWeightsByCluster(() => byCluster(weights));
    metrics.trackEndpointUtilizationByCluster(() => byCluster(cpu));
  } else {
    metrics.trackEndpointWeights(() => weights);
    metrics.trackEndpointUtilization(() => cpu);
  }
  metrics.trackConnected(() => ['sotw', 'sotw', 'delta']);
  metrics.pushed('EDS');
  metrics.pushed('EDS');
  metrics.nacked('CDS');
  metrics.acked('EDS', 1_000, 1_012);
  metrics.published(3);
  metrics.engineTicked(0.7);
  metrics.storeWritten('catalog', 2);
  metrics.samplesReceived('lrs', 4);
  metrics.lrsEntriesReceived('endpoint', 'used', 9);
  metrics.configReload('rejected');
  return metrics;
}

/** A turn that only counts (a real server passes runtime/next-turn.ts's). */
function countingTurn(): { turn: () => Promise<void>; count: () => number } {
  let n = 0;
  return { turn: async () => void n++, count: () => n };
}

describe('Metrics.render in turns', () => {
  it('gives the text prom-client\'s registry.metrics() gives for the same state, taking a turn per metric', async () => {
    const { turn, count } = countingTurn();
    const inTurns = await fixture(false).render(turn);
    const atOnce = await fixture(false).registry.metrics();
    expect(inTurns).toBe(atOnce);
    expect(inTurns).toContain('fulcrum_endpoint_series_omitted{metric="fulcrum_endpoint_weight"} 80');
    expect(inTurns).toContain('xds_pushes_total{type="EDS"} 2');
    const metricCount = fixture(false).registry.getMetricsAsArray().length;
    expect(metricCount).toBeGreaterThan(10);
    expect(count()).toBeGreaterThanOrEqual(metricCount);
  });

  it('gives the same text from sources by cluster, without reading the clusters over the cap', async () => {
    const read: string[] = [];
    const metrics = new Metrics({ processMetrics: false, maxEndpointSeries: 25 });
    metrics.trackEndpointWeightsByCluster(() => byCluster(fleet(10, 10), read));
    const flat = new Metrics({ processMetrics: false, maxEndpointSeries: 25 });
    flat.trackEndpointWeights(() => fleet(10, 10));
    expect(await metrics.render(countingTurn().turn)).toBe(await flat.render(countingTurn().turn));
    expect(read).toEqual(['svc-0000', 'svc-0001']);
    expect(await fixture(true).render(countingTurn().turn)).toBe(await fixture(false).registry.metrics());
  });

  it('caps a large flat source in steps, a turn every few thousand endpoints', async () => {
    const { turn, count } = countingTurn();
    const metrics = new Metrics({ processMetrics: false });
    metrics.trackEndpointWeights(() => fleet(1000, 100));
    const text = await metrics.render(turn);
    const metricCount = metrics.registry.getMetricsAsArray().length;
    // 100k endpoints walked, 5,000 per step: 20 turns before the metrics' own.
    expect(count()).toBeGreaterThanOrEqual(metricCount + 19);
    expect(text).toContain('fulcrum_endpoint_series_omitted{metric="fulcrum_endpoint_weight"} 99000');
    expect(text.split('\n').filter((l) => l.startsWith('fulcrum_endpoint_weight{'))).toHaveLength(1000);
  });

  it('builds overlapping scrapes one after the other, each with its own values', async () => {
    let weight = 1;
    const metrics = new Metrics({ processMetrics: false });
    metrics.trackEndpointWeights(() => [{ cluster: 'web', endpoint: '10.0.0.1:80', value: weight++ }]);
    const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
    const [a, b] = await Promise.all([metrics.render(turn), metrics.render(turn)]);
    expect(a).toContain('fulcrum_endpoint_weight{cluster="web",endpoint="10.0.0.1:80"} 1\n');
    expect(b).toContain('fulcrum_endpoint_weight{cluster="web",endpoint="10.0.0.1:80"} 2\n');
    expect(b.replace(' 2\n', ' 1\n')).toBe(a);
  });
});

describe('capSteps', () => {
  it('yields after each stepEndpoints endpoints walked, and keeps whole clusters while they fit', () => {
    const steps = capSteps(byCluster(fleet(10, 10)), 35, 20);
    let yields = 0;
    let step = steps.next();
    for (; step.done !== true; step = steps.next()) yields++;
    expect(yields).toBe(5);
    expect(step.value.kept.map((v) => v.cluster)).toEqual([...Array(10).fill('svc-0000'), ...Array(10).fill('svc-0001'), ...Array(10).fill('svc-0002')]);
    expect(step.value.omitted).toBe(70);
  });
});
