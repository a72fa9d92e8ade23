import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Catalog } from '../../src/catalog/types.js';
import type { WeightOverrides } from '../../src/catalog/weight-overrides.js';
import { XdsCache } from '../../src/xds/cache.js';
import { TYPE } from '../../src/xds/envoy-api.js';
import { Publisher } from '../../src/xds/publisher.js';
import { formGroupKey } from '../../src/xds/client-form.js';
import { DEFAULT_GROUP } from '../../src/xds/resource-set.js';
import { cluster, endpoint } from '../catalog/helpers.js';

const catalog = (...names: string[]): Catalog => ({
  clusters: names.map((n) => cluster(n, [endpoint('10.0.0.1', 80, { weight: 3 }), endpoint('10.0.0.2', 80, { weight: 2, health: 'DRAINING' })])),
  listeners: [],
  nodeGroups: [],
});
const clusterNames = (cache: XdsCache): string[] => [...cache.snapshotFor('*').resources(TYPE.cluster).keys()].sort();

describe('Publisher', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('publishes the first snapshot at start, then debounces, and publishes nothing once stopped', () => {
    const cache = new XdsCache();
    const published: number[] = [];
    const publisher = new Publisher(cache, pino({ level: 'silent' }), { quietMs: 100, maxMs: 1_000 }, (groups) => void published.push(groups));
    publisher.setCatalog(catalog('a'));
    publisher.start();
    expect(clusterNames(cache)).toEqual(['a']);
    publisher.setCatalog(catalog('a', 'b'));
    expect(clusterNames(cache)).toEqual(['a']);
    vi.advanceTimersByTime(100);
    expect(clusterNames(cache)).toEqual(['a', 'b']);
    publisher.stop();
    publisher.setCatalog(catalog('c'));
    vi.advanceTimersByTime(5_000);
    expect(clusterNames(cache)).toEqual(['a', 'b']);
    expect(published).toHaveLength(2);
  });

  it('reports each endpoint\'s weight as the translator publishes it: the override rounded, at least 1, else static', () => {
    const publisher = new Publisher(new XdsCache(), pino({ level: 'silent' }), { quietMs: 0, maxMs: 0 });
    publisher.setCatalog(catalog('a'));
    const weights: WeightOverrides = new Map([['a', new Map([['10.0.0.1:80', { weight: 0.2 }], ['10.0.0.2:80', { health: 'UNHEALTHY' as const }]])]]);
    publisher.setWeights(weights);
    expect([...publisher.endpointWeights()]).toEqual([
      { cluster: 'a', endpoint: '10.0.0.1:80', value: 1 },
      { cluster: 'a', endpoint: '10.0.0.2:80', value: 2 },
    ]);
    publisher.setWeights(new Map([['a', new Map([['10.0.0.1:80', { weight: 41.6 }]])]]));
    expect([...publisher.endpointWeights()][0]?.value).toBe(42);
    publisher.stop();
  });

  it('publishes gRPC\'s form once a gRPC client connected, also when it came before any catalog, or when a big cluster\'s assignments are encoded ahead first', async () => {
    const grpcKey = formGroupKey(DEFAULT_GROUP, 'grpc');
    const early = new XdsCache();
    const publisher = new Publisher(early, pino({ level: 'silent' }), { quietMs: 100, maxMs: 1_000 });
    publisher.serveGrpcForm();
    publisher.setCatalog(catalog('a'));
    publisher.start();
    expect(early.snapshotFor(DEFAULT_GROUP, 'grpc').group).toBe(grpcKey);
    publisher.stop();

    vi.useRealTimers();
    const cache = new XdsCache();
    const big: Catalog = { clusters: [cluster('big', Array.from({ length: 1_200 }, (_, i) => endpoint(`10.1.${i >> 8}.${i & 255}`, 80, { weight: 1 + (i % 3) })))], listeners: [], nodeGroups: [] };
    const slow = new Publisher(cache, pino({ level: 'silent' }), { quietMs: 0, maxMs: 0 });
    slow.setCatalog(big);
    slow.start();
    slow.serveGrpcForm();
    // Envoy's form is all there is until the big cluster's gRPC form is encoded, in turns.
    expect(cache.snapshotFor(DEFAULT_GROUP, 'grpc').group).toBe(DEFAULT_GROUP);
    await vi.waitFor(() => expect(cache.snapshotFor(DEFAULT_GROUP, 'grpc').group).toBe(grpcKey), { timeout: 10_000, interval: 5 });
    expect([...cache.snapshotFor(DEFAULT_GROUP, 'grpc').resources(TYPE.endpoint).keys()]).toEqual(['big']);
    slow.stop();
  });
});
