/**
 * Delta responses shared between streams (delta-piece.ts): streams in the same state are handed
 * the very same response buffer, and streams in other states (another subscription, reported
 * versions, a stall) still get exactly their own difference.
 */
import { pino } from 'pino';
import { describe, expect, test } from 'vitest';
import { XdsCache } from '../../src/xds/cache.js';
import { DeltaStream } from '../../src/xds/delta-stream.js';
import { TYPE } from '../../src/xds/envoy-api.js';
import { ProxyRegistry } from '../../src/xds/proxy-status.js';
import type { StreamDeps } from '../../src/xds/stream-common.js';
import { decodeDeltaDiscoveryResponse, namesOf, type DeltaDiscoveryResponse } from '../support/xds-client.js';
import type { EncodedResource } from '../../src/xds/resource.js';
import { cluster, clusterWithEndpoints, deltaAck, deltaReq, endpoints, FakeIo, groups, resourceSet } from './stream-fixture.js';

const { cluster: CDS, endpoint: EDS } = TYPE;

/** Records the parts each response was handed over as, so sharing is visible. */
class PartsIo extends FakeIo {
  readonly parts: (readonly Uint8Array[])[] = [];
  override send(parts: readonly Uint8Array[]): void {
    this.parts.push(parts);
    super.send(parts);
  }
}

function fleet(count: number) {
  const cache = new XdsCache();
  cache.update(groups(resourceSet(...['a', 'b', 'c'].map((n) => clusterWithEndpoints(n)))));
  const registry = new ProxyRegistry(() => 0);
  const deps: StreamDeps = { cache, registry, log: pino({ level: 'silent' }), maxResourceNames: 100, controlPlaneId: 'shared-test' };
  const streams = Array.from({ length: count }, (_, i) => {
    const io = new PartsIo();
    const stream = new DeltaStream(deps, io, 'ads-delta');
    const take = (): DeltaDiscoveryResponse[] => io.sent.splice(0).map(decodeDeltaDiscoveryResponse);
    return { io, stream, take, node: { id: `n${i}`, cluster: 'default' } };
  });
  const publish = (...names: string[]): void => {
    const set = resourceSet(...names.map((n) => clusterWithEndpoints(n)), endpoints('a', 9090));
    cache.update(groups(set));
    for (const s of streams) s.stream.onCacheChange();
  };
  const wake = (): void => {
    for (const s of streams) s.stream.onCacheChange();
  };
  return { streams, publish, registry, cache, wake };
}

/** Every stream ACKs what it was sent; what it was handed is forgotten. */
function ackAll(streams: ReturnType<typeof fleet>['streams']): void {
  for (const s of streams) for (const r of s.take()) s.stream.onRequest(deltaAck(r));
  for (const s of streams) s.io.parts.length = 0;
}

/** Subscribes CDS (wildcard) and EDS (`names`), ACKing everything. */
function subscribe(s: ReturnType<typeof fleet>['streams'][number], names: string[]): void {
  s.stream.onRequest(deltaReq(CDS, { node: s.node, resource_names_subscribe: ['*'] }));
  s.stream.onRequest(deltaReq(EDS, { resource_names_subscribe: names }));
  for (const r of s.take()) s.stream.onRequest(deltaAck(r));
  s.io.parts.length = 0;
}

describe('Delta responses shared between streams', () => {
  test('streams with the same subscription and state are handed the same response buffer', () => {
    const { streams, publish } = fleet(3);
    for (const s of streams) subscribe(s, ['a', 'b', 'c']);
    publish('a', 'b', 'c'); // endpoints of a change (port 9090)
    const [first, ...others] = streams.map((s) => s.io.parts);
    expect(first).toHaveLength(1);
    for (const o of others) expect(o[0]?.[0]).toBe(first?.[0]?.[0]);
    const decoded = streams.map((s) => s.take());
    for (const d of decoded) expect(d.map((r) => [r.type_url, namesOf(r)])).toEqual([[EDS, ['a']]]);
  });

  test('streams stay in sync through an addition and a removal: each push after is one shared buffer', () => {
    const { streams, cache, wake } = fleet(3);
    for (const s of streams) subscribe(s, ['a', 'b', 'c', 'd']);
    const clusters = ['a', 'b', 'c', 'd'].map((n) => cluster(n));
    /** Every stream was handed the same buffers (a stream out of sync builds its own); then all are ACKed. */
    const sharedThenAck = (): void => {
      const [first, ...others] = streams.map((s) => s.io.parts);
      expect(first?.length).toBeGreaterThan(0);
      for (const o of others) o.forEach((parts, i) => expect(parts[0]).toBe(first?.[i]?.[0]));
      ackAll(streams);
    };
    const publishEndpoints = (...parts: EncodedResource[]): void => {
      cache.update(groups(resourceSet(...clusters, ...parts)));
      wake();
    };
    const abc = ['a', 'b', 'c'].map((n) => endpoints(n));
    // Cluster d appears first (Envoy then warms every cluster again: those responses are per stream).
    publishEndpoints(...abc);
    ackAll(streams);
    publishEndpoints(...abc, endpoints('d')); // d's assignment appears
    sharedThenAck();
    publishEndpoints(...abc); // and goes away
    sharedThenAck();
    publishEndpoints(endpoints('a'), endpoints('b', 7070), endpoints('c'));
    expect(streams.map((s) => s.io.sent.map((b) => namesOf(decodeDeltaDiscoveryResponse(b))))).toEqual(streams.map(() => [['b']]));
    sharedThenAck();
  });

  test('another subscription gets its own difference: only the names it holds', () => {
    const { streams, publish } = fleet(2);
    const [all, some] = streams;
    if (!all || !some) throw new Error('two streams');
    subscribe(all, ['a', 'b', 'c']);
    subscribe(some, ['b']);
    publish('a', 'b', 'c');
    expect(all.take().map(namesOf)).toEqual([['a']]);
    expect(some.take()).toEqual([]);
    publish('a', 'b'); // cluster c and its endpoints go away
    expect(all.take().map((r) => [r.type_url, [...r.removed_resources]])).toEqual([
      [EDS, ['c']],
      [CDS, ['c']],
    ]);
    expect(some.take().map((r) => [r.type_url, [...r.removed_resources]])).toEqual([[CDS, ['c']]]);
  });

  test('a stream that was congested is sent the merged changes once, then shares again', () => {
    const { streams, publish } = fleet(2);
    const [live, stalled] = streams;
    if (!live || !stalled) throw new Error('two streams');
    subscribe(live, ['a', 'b', 'c']);
    subscribe(stalled, ['a', 'b', 'c']);
    stalled.io.full = true;
    publish('a', 'b', 'c');
    publish('a', 'b');
    expect(stalled.take()).toEqual([]);
    stalled.io.full = false;
    stalled.stream.onCacheChange(); // what the server does on drain
    const merged = stalled.take();
    expect(merged.map((r) => [r.type_url, namesOf(r), [...r.removed_resources]])).toEqual([
      [EDS, ['a'], []],
      [EDS, [], ['c']],
      [CDS, [], ['c']],
    ]);
    live.take();
    for (const r of merged) stalled.stream.onRequest(deltaAck(r));
    live.io.parts.length = 0;
    stalled.io.parts.length = 0;
    publish('a', 'b', 'c');
    // Back in sync: the same content as the live stream (its nonces differ, so compare bytes of the shared head).
    expect(stalled.take().map((r) => [r.type_url, namesOf(r)])).toEqual(live.take().map((r) => [r.type_url, namesOf(r)]));
  });

  test('streams in sync share what they hold; one that unsubscribes and resubscribes stays exact, and so do the others', () => {
    const { streams, publish, registry } = fleet(3);
    for (const s of streams) subscribe(s, ['a', 'b', 'c']);
    publish('a', 'b', 'c');
    for (const s of streams) for (const r of s.take()) s.stream.onRequest(deltaAck(r));
    const held = (s: (typeof streams)[number], type: string) => registry.list().find((r) => r.node.id === s.node.id)?.types.get(type as typeof EDS)?.sentResources;
    const [one, two, three] = streams;
    if (!one || !two || !three) throw new Error('three streams');
    // One shared map of what they hold, not a copy per stream.
    expect(held(two, EDS)).toBe(held(one, EDS));
    expect(held(three, CDS)).toBe(held(one, CDS));
    two.stream.onRequest(deltaReq(EDS, { resource_names_unsubscribe: ['b'] }));
    expect(two.take()).toEqual([]);
    two.stream.onRequest(deltaReq(EDS, { resource_names_subscribe: ['b'] }));
    // Resubscribed: the client does not hold b any more, so it is sent again; only to this stream.
    expect(two.take().map((r) => [r.type_url, namesOf(r)])).toEqual([[EDS, ['b']]]);
    expect(one.take()).toEqual([]);
    expect(three.take()).toEqual([]);
    expect([...(held(one, EDS)?.keys() ?? [])].sort()).toEqual(['a', 'b', 'c']);
    publish('a', 'b');
    for (const s of streams) {
      expect(s.take().map((r) => [r.type_url, namesOf(r), [...r.removed_resources]])).toEqual([
        [EDS, [], ['c']],
        [CDS, [], ['c']],
      ]);
    }
  });

  test('a name holding the key separator is not mistaken for the names it joins (the shared pieces are keyed exactly)', () => {
    const { streams, publish } = fleet(2);
    const [two, one] = streams;
    if (!two || !one) throw new Error('two streams');
    subscribe(two, ['a', 'b']);
    one.stream.onRequest(deltaReq(CDS, { node: one.node, resource_names_subscribe: ['*'] }));
    for (const r of one.take()) one.stream.onRequest(deltaAck(r));
    one.stream.onRequest(deltaReq(EDS, { resource_names_subscribe: ['a\nb'] }));
    // It does not exist: told so once (removed_resources), then nothing until it exists.
    const told = one.take();
    expect(told.map((x) => [namesOf(x), [...x.removed_resources]])).toEqual([[[], ['a\nb']]]);
    for (const r of told) one.stream.onRequest(deltaAck(r));
    publish('a', 'b', 'c');
    expect(two.take().map(namesOf)).toEqual([['a']]);
    expect(one.take()).toEqual([]);
  });
});

