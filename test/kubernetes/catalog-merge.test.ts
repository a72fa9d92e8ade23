import { describe, expect, it } from 'vitest';
import type { Catalog, Listener } from '../../src/catalog/types.js';
import { withKubernetes } from '../../src/sources/kubernetes/catalog-merge.js';
import type { KubernetesContribution } from '../../src/sources/kubernetes/mapping.js';
import { cluster, endpoint } from '../catalog/helpers.js';

const listener = (routes: Listener['routes']): Listener => ({ name: 'edge', kind: 'socket', address: '0.0.0.0', port: 10000, routes });

describe('withKubernetes', () => {
  const own: Catalog = {
    clusters: [cluster('web', [endpoint('10.0.0.1')]), cluster('shop/api:http', [endpoint('10.0.0.9')])],
    listeners: [
      listener([
        { domain: '*', prefix: '/api', cluster: 'shop/api:http' },
        { domain: '*', prefix: '/cart', cluster: 'shop/cart:http' },
        { domain: '*', prefix: '/pinned', cluster: 'shop/cart:http', hashPolicy: { cookie: { name: 'sid' } } },
        { domain: '*', prefix: '/', cluster: 'web' },
      ]),
    ],
    nodeGroups: [{ nodeCluster: 'edge', listeners: ['edge'], clusters: [] }],
  };
  const view: KubernetesContribution = {
    clusters: [cluster('shop/api:http', [endpoint('10.1.1.1')]), cluster('shop/cart:http', [endpoint('10.1.1.2')])],
    hashPolicies: new Map([
      ['shop/cart:http', { header: 'x-user' }],
      ['shop/api:http', { header: 'x-api' }],
    ]),
    warnings: [],
  };

  it('is the catalog itself when discovery has no view yet', () => {
    expect(withKubernetes(own, undefined)).toBe(own);
  });

  it('adds discovered clusters; a cluster the store defines keeps the store version', () => {
    const merged = withKubernetes(own, view);
    expect(merged.clusters.map((c) => c.name)).toEqual(['shop/api:http', 'shop/cart:http', 'web']);
    expect(merged.clusters.find((c) => c.name === 'shop/api:http')?.endpoints.map((e) => e.address)).toEqual(['10.0.0.9']);
    expect(merged.nodeGroups).toBe(own.nodeGroups);
  });

  it('puts a hash-header annotation on routes to its cluster, never over a route\'s own hash policy', () => {
    const routes = withKubernetes(own, view).listeners[0]?.routes ?? [];
    expect(routes.map((r) => [r.prefix, r.hashPolicy])).toEqual([
      ['/api', { header: 'x-api' }],
      ['/cart', { header: 'x-user' }],
      ['/pinned', { cookie: { name: 'sid' } }],
      ['/', undefined],
    ]);
  });

  it('gives the very same listeners (each object and the list) for the same inputs, so the translator can keep their resources', () => {
    const plain = withKubernetes(own, { ...view, hashPolicies: new Map() });
    expect(plain.listeners).toBe(own.listeners);
    const annotated = withKubernetes(own, view);
    expect(annotated.listeners).not.toBe(own.listeners);
    // Again with the same view (e.g. after a store write): the same objects, not copies.
    const again = withKubernetes({ ...own, clusters: [...own.clusters] }, view);
    expect(again.listeners).toBe(annotated.listeners);
    expect(again.listeners[0]).toBe(annotated.listeners[0]);
    // Another annotation: a new listener with it.
    const changed = withKubernetes(own, { ...view, hashPolicies: new Map([['shop/cart:http', { header: 'x-other' }]]) });
    expect(changed.listeners[0]).not.toBe(annotated.listeners[0]);
    expect(changed.listeners[0]?.routes.map((r) => r.hashPolicy)).toEqual([undefined, { header: 'x-other' }, { cookie: { name: 'sid' } }, undefined]);
  });
});
