/**
 * The server wakes only the streams whose node group changed. The real XdsServer and XdsCache on
 * loopback, fed hand-made resource sets (no config file, no startFulcrum); the stream classes are
 * spied on to count wake-ups per proxy.
 */
import { pino } from 'pino';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { XdsCache } from '../../src/xds/cache.js';
import { DeltaStream } from '../../src/xds/delta-stream.js';
import { TYPE } from '../../src/xds/envoy-api.js';
import { ProxyRegistry } from '../../src/xds/proxy-status.js';
import type { ResourceSet } from '../../src/xds/resource-set.js';
import { XdsServer } from '../../src/xds/server.js';
import { SotwStream } from '../../src/xds/sotw-stream.js';
import { waitFor } from '../support/wait.js';
import { namesOf, XdsClient } from '../support/xds-client.js';
import { base, clusterWithEndpoints, groups, loopbackServerOptions, resourceSet } from './stream-fixture.js';

let stop: (() => Promise<void>) | undefined;
afterEach(async () => {
  vi.restoreAllMocks();
  await stop?.();
  stop = undefined;
});

async function serve(initial: Map<string, ResourceSet>) {
  const cache = new XdsCache();
  cache.update(initial);
  const registry = new ProxyRegistry();
  const server = new XdsServer(
    loopbackServerOptions('fanout-test'),
    cache,
    registry,
    pino({ level: 'silent' }),
  );
  const client = XdsClient.forPort(await server.start());
  stop = async () => {
    client.close();
    await server.stop(1_000);
  };
  return { cache, registry, client };
}

/** Counts onCacheChange calls per node id, for both stream kinds. */
function wakeups(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const proto of [SotwStream.prototype, DeltaStream.prototype]) {
    const original = proto.onCacheChange;
    vi.spyOn(proto, 'onCacheChange').mockImplementation(function (this: SotwStream | DeltaStream) {
      const id = this.proxy?.node.id ?? '?';
      counts.set(id, (counts.get(id) ?? 0) + 1);
      original.call(this);
    });
  }
  return counts;
}

const edgeOnly = (port: number) => resourceSet(clusterWithEndpoints('edge-backend', port));

describe('XdsServer fan-out', () => {
  test('a change to group A wakes A\'s streams only; a change to the default group does not wake A', async () => {
    const { cache, registry, client } = await serve(groups({ '*': base(), edge: edgeOnly(1) }));
    const counts = wakeups();
    const edge = client.sotw();
    edge.request(TYPE.cluster, [], { node: { id: 'edge-1', cluster: 'edge' } });
    expect(namesOf(await edge.nextOf(TYPE.cluster))).toEqual(['edge-backend']);
    const core = client.delta();
    core.send({ node: { id: 'core-1', cluster: 'core' }, type_url: TYPE.cluster });
    expect(namesOf(await core.nextOf(TYPE.cluster))).toEqual(['api', 'web']);
    await waitFor(() => registry.size === 2, { what: 'both proxies registered', timeoutMs: 10_000 });

    // Group edge changes, the default group does not.
    expect([...cache.update(groups({ '*': base(), edge: edgeOnly(2) }))]).toEqual(['edge']);
    expect(counts.get('edge-1')).toBe(1);
    expect(counts.get('core-1')).toBeUndefined();

    // The default group changes, edge does not.
    expect([...cache.update(groups({ '*': resourceSet(base(), clusterWithEndpoints('new', 3)), edge: edgeOnly(2) }))]).toEqual(['*']);
    expect(counts.get('edge-1')).toBe(1);
    expect(counts.get('core-1')).toBe(1);
    expect(namesOf(await core.nextOf(TYPE.cluster))).toEqual(['new']);
  });

  test('a group that appears or disappears reaches the proxies that move', async () => {
    // As the translator does: the default group holds everything, a node group a slice of it.
    const everything = resourceSet(base(), edgeOnly(1));
    const { cache, client } = await serve(groups(everything));
    const counts = wakeups();
    const edge = client.sotw();
    edge.request(TYPE.cluster, [], { node: { id: 'edge-1', cluster: 'edge' } });
    const all = await edge.nextOf(TYPE.cluster);
    expect(namesOf(all)).toEqual(['api', 'edge-backend', 'web']);
    edge.ack(all);
    const core = client.sotw();
    core.request(TYPE.cluster, [], { node: { id: 'core-1', cluster: 'core' } });
    await core.nextOf(TYPE.cluster);

    cache.update(groups({ '*': everything, edge: edgeOnly(1) }));
    expect(counts.get('edge-1')).toBe(1);
    expect(counts.get('core-1')).toBeUndefined();
    const narrowed = await edge.nextOf(TYPE.cluster);
    expect(namesOf(narrowed)).toEqual(['edge-backend']);
    edge.ack(narrowed);

    cache.update(groups(everything));
    expect(counts.get('edge-1')).toBe(2);
    expect(counts.get('core-1')).toBeUndefined();
    expect(namesOf(await edge.nextOf(TYPE.cluster))).toEqual(['api', 'edge-backend', 'web']);
  });
});
