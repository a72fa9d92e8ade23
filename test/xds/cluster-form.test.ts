import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Cluster, Endpoint } from '../../src/catalog/types.js';
import { parseConfigValue } from '../../src/sources/config-file.js';
import { TYPE } from '../../src/xds/envoy-api.js';
import { DEFAULT_GROUP } from '../../src/xds/resource-set.js';
import { clusterResource, sameClusterForm } from '../../src/xds/translate-clusters.js';
import { Translator } from '../../src/xds/translator.js';
import { configDocArb } from '../support/catalog-arbitraries.js';
import { cluster, endpoint } from '../catalog/helpers.js';

/** What an endpoint write can do to a cluster's endpoints: weights, health, localities, priorities, count. */
const endpointsChange = fc.record({
  weightsOnly: fc.boolean(),
  drop: fc.nat({ max: 3 }),
  add: fc.nat({ max: 3 }),
  seed: fc.nat(),
});

function changed(endpoints: readonly Endpoint[], how: { weightsOnly: boolean; drop: number; add: number; seed: number }): Endpoint[] {
  const zones = ['a', 'b', 'c'];
  const moved = endpoints.map((e, i) => ({
    ...e,
    weight: 1 + ((how.seed + i) % 9),
    ...(how.weightsOnly ? {} : { health: (how.seed + i) % 4 === 0 ? 'DRAINING' : e.health, locality: { ...e.locality, zone: zones[(how.seed + i) % 3] as string }, priority: (how.seed + i) % 5 === 0 ? 1 : e.priority }),
  }));
  if (how.weightsOnly) return moved;
  const added = Array.from({ length: how.add }, (_, i) => endpoint(`10.9.9.${i + 1}`, 9000, { locality: { region: 'r', zone: zones[i % 3] as string, subZone: '' } }));
  return [...moved.slice(how.drop), ...added];
}

describe('sameClusterForm', () => {
  it('says "same" only for clusters whose Cluster resources are equal, and says it for a weight-only endpoint change', () => {
    fc.assert(
      fc.property(configDocArb, endpointsChange, (doc, how) => {
        for (const c of parseConfigValue(doc, 'generated').catalog.clusters) {
          const next: Cluster = { ...c, endpoints: changed(c.endpoints, how) };
          const same = sameClusterForm(c, next);
          if (same) expect(JSON.stringify(clusterResource(next))).toBe(JSON.stringify(clusterResource(c)));
          if (how.weightsOnly) expect(same).toBe(true);
        }
      }),
      { numRuns: 150 },
    );
  });

  it('says "not known" when any other field is another value, or a field is added or missing', () => {
    const c = cluster('c', [endpoint('10.0.0.1')], { outlierDetection: { consecutive5xx: 5 } } as Partial<Cluster>);
    expect(sameClusterForm(c, { ...c })).toBe(true);
    expect(sameClusterForm(c, { ...c, outlierDetection: { consecutive5xx: 5 } } as Cluster)).toBe(false); // equal, not the same object
    expect(sameClusterForm(c, { ...c, connectTimeoutMs: 2000 })).toBe(false);
    const { outlierDetection: _, ...without } = c as Cluster & { outlierDetection: unknown };
    expect(sameClusterForm(c, without as Cluster)).toBe(false);
    expect(sameClusterForm(without as Cluster, c)).toBe(false);
  });

  it('sees the endpoint count of a ring-hash cluster (its ring size) and whether it spans localities', () => {
    const ring = cluster('r', [endpoint('10.0.0.1'), endpoint('10.0.0.2')], { lbPolicy: 'RING_HASH', ringHash: { virtualNodesPerHost: 100, hashFunction: 'XX_HASH' } });
    expect(sameClusterForm(ring, { ...ring, endpoints: [endpoint('10.0.0.1')] })).toBe(false);
    const spread = [endpoint('10.0.0.1'), endpoint('10.0.0.2', 8080, { locality: { region: 'eu', zone: 'b', subZone: '' } })];
    expect(sameClusterForm(ring, { ...ring, endpoints: spread })).toBe(false);
  });
});

describe('Translator: a Cluster resource kept across endpoint writes', () => {
  it('is the same encoded resource after a weight write, and a new one after a change of form', () => {
    const t = new Translator();
    const c = cluster('c', [endpoint('10.0.0.1'), endpoint('10.0.0.2')], { lbPolicy: 'RING_HASH', ringHash: { virtualNodesPerHost: 100, hashFunction: 'XX_HASH' } });
    const cds = (clusters: Cluster[]) => t.translate({ clusters, listeners: [], nodeGroups: [] }).get(DEFAULT_GROUP)?.get(TYPE.cluster)?.get('c');
    const first = cds([c]);
    const weighted = { ...c, endpoints: [endpoint('10.0.0.1', 8080, { weight: 7 }), endpoint('10.0.0.2')] };
    expect(cds([weighted])).toBe(first);
    // Three hosts: the derived ring size doubles.
    const grown = { ...weighted, endpoints: [...weighted.endpoints, endpoint('10.0.0.3')] };
    const third = cds([grown]);
    expect(third?.hash).not.toBe(first?.hash);
    expect(cds([{ ...grown, connectTimeoutMs: 5000 }])?.hash).not.toBe(third?.hash);
  });
});
