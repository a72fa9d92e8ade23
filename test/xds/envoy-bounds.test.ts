import { describe, expect, it } from 'vitest';
import type { Cluster, Endpoint } from '../../src/catalog/types.js';
import { clusterResource, loadAssignmentResource } from '../../src/xds/translate-clusters.js';

/** What the translator sends stays within Envoy's bounds: EDS weights per priority (found by test/e2e/envoy-parity.test.ts) and ring sizes. */

describe('EDS weights within Envoy bounds', () => {
  const MAX = 2 ** 32 - 1;
  const endpoint = (port: number, weight: number, zone: string): Endpoint => ({
    address: '10.0.0.1', port, weight, priority: 0, health: 'HEALTHY', locality: { region: '', zone, subZone: '' },
  });
  const cluster = (lbPolicy: Cluster['lbPolicy'], endpoints: Endpoint[]): Cluster => ({
    name: 'c', lbPolicy, connectTimeoutMs: 1000, http2: false, endpoints, weighting: { kind: 'static' },
  });
  const prioritySum = (cla: Record<string, unknown>): number =>
    (cla.endpoints as { lb_endpoints: { load_balancing_weight: { value: number } }[] }[])
      .flatMap((l) => l.lb_endpoints.map((e) => e.load_balancing_weight.value))
      .reduce((a, b) => a + b, 0);

  it('fits the endpoint weights of a whole priority (all localities) into uint32, keeping ratios', () => {
    const weights = new Map([['10.0.0.1:1', { weight: 3e9 }], ['10.0.0.1:2', { weight: 3e9 }], ['10.0.0.1:3', { weight: 1.5e9 }]]);
    const cla = loadAssignmentResource(cluster('ROUND_ROBIN', [endpoint(1, 1, 'a'), endpoint(2, 1, 'b'), endpoint(3, 1, 'c')]), weights);
    expect(prioritySum(cla)).toBeLessThanOrEqual(MAX);
    const ws = (cla.endpoints as { lb_endpoints: { load_balancing_weight: { value: number } }[] }[]).map((l) => l.lb_endpoints[0]?.load_balancing_weight.value ?? 0);
    expect((ws[0] ?? 0) / (ws[2] ?? 1)).toBeCloseTo(2, 6);
  });

  it('ring hash across localities: the common sum times the localities stays within uint32', () => {
    // The generator's case: one locality's sum is large, so K near 2^32 per locality overflowed the priority.
    const cla = loadAssignmentResource(cluster('RING_HASH', [endpoint(1, 923_439, ''), endpoint(2, 1, ''), endpoint(3, 510_894, 'z')]));
    expect(prioritySum(cla)).toBeLessThanOrEqual(MAX);
  });
});

describe('ring size bounds as the operator wrote them', () => {
  it("a maximumRingSize below the derived size caps it instead of being raised", () => {
    const endpoints = [1, 2, 3].map((port): Endpoint => ({ address: '10.0.0.1', port, weight: 1, priority: 0, health: 'HEALTHY', locality: { region: '', zone: '', subZone: '' } }));
    const c: Cluster = {
      name: 'r', lbPolicy: 'RING_HASH', connectTimeoutMs: 1000, http2: false, endpoints, weighting: { kind: 'static' },
      ringHash: { virtualNodesPerHost: 1000, hashFunction: 'XX_HASH', maximumRingSize: 64 },
    };
    expect(clusterResource(c).ring_hash_lb_config).toMatchObject({ minimum_ring_size: { value: 64 }, maximum_ring_size: { value: 64 } });
  });
});
