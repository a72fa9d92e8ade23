import { describe, expect, it } from 'vitest';
import { applyDiscoveredOverrides, indexOverrides, NO_OVERRIDES } from '../../src/catalog/discovered-overrides.js';
import type { OverrideRecord } from '../../src/catalog/store/index.js';
import { withKubernetes } from '../../src/sources/kubernetes/catalog-merge.js';
import { cluster, endpoint } from './helpers.js';

const NAME = 'ns/web:http';
const discovered = cluster(NAME, [endpoint('10.1.0.1'), endpoint('10.1.0.2'), endpoint('10.1.0.3', 8080, { health: 'UNHEALTHY' })], {
  lbPolicy: 'RING_HASH',
  ringHash: { virtualNodesPerHost: 100, hashFunction: 'XX_HASH' },
  connectTimeoutMs: 2500,
  http2: true,
});

const record = (target: OverrideRecord['target'], value: OverrideRecord['value'], revision = 1): OverrideRecord => ({
  name: target.endpoint ? `${target.cluster}/${target.endpoint.address}:${target.endpoint.port}` : target.cluster,
  target,
  value,
  revision,
  updatedAt: '2026-12-01T00:00:00.000Z',
});
const ep = (address: string, port = 8080) => ({ cluster: NAME, endpoint: { address, port } });

describe('applyDiscoveredOverrides', () => {
  it('without overrides returns the clusters unchanged', () => {
    expect(applyDiscoveredOverrides([discovered], NO_OVERRIDES)).toEqual([discovered]);
  });

  it('keeps an overridden cluster the same object while its overrides say the same, even from a rebuilt index', () => {
    const records = [record(ep('10.1.0.1'), { state: 'draining' }), record({ cluster: NAME }, { policy: { lbPolicy: 'LEAST_REQUEST', weighting: { kind: 'static' } } })];
    const [first] = applyDiscoveredOverrides([discovered], indexOverrides(records));
    expect(first).not.toBe(discovered);
    // The stages after the overlay find changed clusters by identity (catalog/changed-clusters.ts).
    expect(applyDiscoveredOverrides([discovered], indexOverrides(records))[0]).toBe(first);
    const [drainedTwo] = applyDiscoveredOverrides([discovered], indexOverrides([...records, record(ep('10.1.0.2'), { state: 'draining' })]));
    expect(drainedTwo).not.toBe(first);
    expect(drainedTwo?.endpoints.map((e) => e.health)).toEqual(['DRAINING', 'DRAINING', 'UNHEALTHY']);
    // A discovered cluster without overrides is itself.
    expect(applyDiscoveredOverrides([discovered], NO_OVERRIDES)[0]).toBe(discovered);
  });

  it('serves a drained endpoint DRAINING, leaves a disabled one out and keeps an active one as discovered', () => {
    const overrides = indexOverrides([
      record(ep('10.1.0.1'), { state: 'draining' }),
      record(ep('10.1.0.2'), { state: 'disabled' }),
      record(ep('10.1.0.3'), { state: 'active' }),
    ]);
    const [c] = applyDiscoveredOverrides([discovered], overrides);
    expect(c?.endpoints.map((e) => [e.address, e.health])).toEqual([
      ['10.1.0.1', 'DRAINING'],
      ['10.1.0.3', 'UNHEALTHY'],
    ]);
  });

  it('replaces the whole policy block and keeps the Service\'s other settings', () => {
    const policy = { lbPolicy: 'LEAST_REQUEST', leastRequest: { choiceCount: 3 }, weighting: { kind: 'pid', setpoint: 0.6 } } as const;
    const [c] = applyDiscoveredOverrides([discovered], indexOverrides([record({ cluster: NAME }, { policy })]));
    expect(c).toMatchObject({ ...policy, connectTimeoutMs: 2500, http2: true });
    // RING_HASH's settings belong to the replaced block: they must not leak into LEAST_REQUEST.
    expect(c?.ringHash).toBeUndefined();
    expect(c?.endpoints).toEqual(discovered.endpoints);
  });

  it('does nothing for an override whose cluster or endpoint is not discovered now (kept for when it comes back)', () => {
    const overrides = indexOverrides([record(ep('10.9.9.9'), { state: 'disabled' }), record({ cluster: 'ns/gone:http' }, { policy: { lbPolicy: 'RANDOM', weighting: { kind: 'static' } } })]);
    expect(applyDiscoveredOverrides([discovered], overrides)).toEqual([discovered]);
    const back = cluster('ns/gone:http', [endpoint('10.9.9.9')]);
    expect(applyDiscoveredOverrides([back], overrides)[0]?.lbPolicy).toBe('RANDOM');
  });

  it('withKubernetes applies the overrides to discovered clusters only: a store cluster of the same name wins untouched', () => {
    const overrides = indexOverrides([record(ep('10.1.0.1'), { state: 'disabled' })]);
    const view = { clusters: [discovered], hashPolicies: new Map(), warnings: [] };
    const merged = withKubernetes({ clusters: [], listeners: [], nodeGroups: [] }, view, overrides);
    expect(merged.clusters[0]?.endpoints.map((e) => e.address)).toEqual(['10.1.0.2', '10.1.0.3']);
    const own = cluster(NAME, [endpoint('10.1.0.1')]);
    expect(withKubernetes({ clusters: [own], listeners: [], nodeGroups: [] }, view, overrides).clusters).toEqual([own]);
  });
});
