/**
 * The Delta (incremental) stream state machine alone: requests in through onRequest, cache
 * changes through onCacheChange, responses out of a fake StreamIo. No gRPC transport, no config.
 */
import { describe, expect, test } from 'vitest';
import { TYPE } from '../../src/xds/envoy-api.js';
import { withDefaults } from '../../src/xds/limits.js';
import { resourceSyncState, syncState, type TypeStatus } from '../../src/xds/proxy-status.js';
import { namesOf, SHORT, versionsOf, type DeltaDiscoveryResponse } from '../support/xds-client.js';
import {
  base, cluster, clusterWithEndpoints, deltaAck, deltaReq, deltaRig, listener, NODE, nodeGroupOfNode, resourceSet, routes, takeOne, typeState, type DeltaRig,
} from './stream-fixture.js';

const { cluster: CDS, endpoint: EDS, listener: LDS, route: RDS } = TYPE;

/** The first request (with node) on a stream. */
function first(r: DeltaRig, type: string, subscribe: string[], initial: Record<string, string> = {}): DeltaDiscoveryResponse {
  r.stream.onRequest(deltaReq(type, { node: NODE, resource_names_subscribe: subscribe, initial_resource_versions: initial }));
  return takeOne(r);
}

/** The client ACKs everything it was sent. */
const ackAll = (r: DeltaRig): void => {
  for (const resp of r.take()) r.stream.onRequest(deltaAck(resp));
};

const removedOf = (x: DeltaDiscoveryResponse) => [...x.removed_resources].sort();
const summary = (x: DeltaDiscoveryResponse) => `${SHORT[x.type_url]}[${namesOf(x).join(',')}]-[${removedOf(x).join(',')}]`;
const version = (r: DeltaRig, type: string, name: string) => r.cache.snapshotFor('').resources(type as typeof CDS).get(name)?.version;

describe('Delta stream: identity and bad input', () => {
  test('a first request without node fails the stream with INVALID_ARGUMENT', () => {
    const r = deltaRig();
    r.stream.onRequest(deltaReq(CDS, { resource_names_subscribe: ['*'] }));
    expect(r.io.failure).toMatchObject({ code: 3, message: expect.stringMatching(/node/) });
    expect(r.take()).toEqual([]);
  });

  test('the name limit bounds the whole subscription, not only one request', () => {
    const r = deltaRig(base(), { maxResourceNames: 4 });
    expect(namesOf(first(r, EDS, ['web', 'api', 'a1']))).toEqual(['api', 'web']);
    r.stream.onRequest(deltaReq(EDS, { resource_names_subscribe: ['a2', 'a3'] }));
    expect(r.io.failure?.code).toBe(8);
  });

  test('a wildcard client may report more initial versions than the name limit', () => {
    const many = resourceSet(['a', 'b', 'c', 'd'].flatMap((n) => clusterWithEndpoints(n)));
    const r = deltaRig(many, { maxResourceNames: 3 });
    const held = Object.fromEntries(['a', 'b', 'c', 'd'].map((n) => [n, version(r, CDS, n) ?? '']));
    r.stream.onRequest(deltaReq(CDS, { node: NODE, initial_resource_versions: held }));
    // Not refused, and (holding everything) sent nothing.
    expect(r.io.failure).toBeUndefined();
    expect(r.take()).toEqual([]);
    expect(typeState(r.registry, CDS)?.state).toBe('SYNCED');
  });
});

describe('Delta stream: wildcard', () => {
  test('an empty first CDS request is a wildcard: every cluster, each with the cache\'s version', () => {
    const r = deltaRig();
    const resp = first(r, CDS, []);
    expect(versionsOf(resp)).toEqual({ api: version(r, CDS, 'api'), web: version(r, CDS, 'web') });
    expect(resp.removed_resources).toEqual([]);
  });

  test('"*" subscribes to everything; a push carries only what is new', () => {
    const r = deltaRig();
    r.stream.onRequest(deltaAck(first(r, LDS, ['*'])));
    r.publish(resourceSet(base(), listener('ingress2', 10001)));
    expect(namesOf(takeOne(r))).toEqual(['ingress2']);
  });

  test.each([CDS, LDS])('the first wildcard request for %s is answered even when there is nothing', (type) => {
    const r = deltaRig(resourceSet());
    const resp = first(r, type, []);
    expect(resp.resources).toEqual([]);
    expect(resp.removed_resources).toEqual([]);
    expect(resp.nonce).not.toBe('');
  });

  test('an empty first EDS request is not a wildcard', () => {
    const r = deltaRig();
    r.stream.onRequest(deltaReq(EDS, { node: NODE }));
    expect(r.take()).toEqual([]);
  });

  test('unsubscribing "*" leaves only the named resources', () => {
    const r = deltaRig();
    r.stream.onRequest(deltaAck(first(r, CDS, ['*', 'web'])));
    r.stream.onRequest(deltaReq(CDS, { resource_names_unsubscribe: ['*'] }));
    r.publish(resourceSet(cluster('api', 'RANDOM'), cluster('web', 'RANDOM')));
    expect(namesOf(takeOne(r))).toEqual(['web']);
  });
});

describe('Delta stream: initial_resource_versions', () => {
  test('a resource held at the current version is not resent; one that differs is', () => {
    const r = deltaRig();
    const resp = first(r, CDS, [], { api: version(r, CDS, 'api') ?? '', web: 'not-what-you-have' });
    expect(versionsOf(resp)).toEqual({ web: version(r, CDS, 'web') });
    expect(resp.removed_resources).toEqual([]);
  });

  test('a held resource that no longer exists arrives as removed_resources', () => {
    const r = deltaRig();
    const resp = first(r, EDS, ['web', 'api', 'gone'], { web: version(r, EDS, 'web') ?? '', gone: 'v-old' });
    expect(namesOf(resp)).toEqual(['api']);
    expect(removedOf(resp)).toEqual(['gone']);
  });

  test('a wildcard client reconnecting with everything current is sent nothing (it initialized long ago)', () => {
    const r = deltaRig();
    r.stream.onRequest(deltaReq(CDS, { node: NODE, initial_resource_versions: { api: version(r, CDS, 'api') ?? '', web: version(r, CDS, 'web') ?? '' } }));
    expect(r.take()).toEqual([]);
    expect(typeState(r.registry, CDS)?.state).toBe('SYNCED');
  });

  test('a new wildcard client gets an answer even when there is nothing to send', () => {
    const r = deltaRig(resourceSet());
    const resp = first(r, CDS, []);
    expect(resp.resources).toEqual([]);
    r.stream.onRequest(deltaAck(resp));
    expect(r.take()).toEqual([]);
  });

  // Review ("oom-one-connection"): reports were kept whole, whatever was subscribed, 12 MiB per
  // stream against a 2 MiB limit; go-control-plane's LinearCache drops the names not subscribed.
  test('versions reported for names a named type does not subscribe to are not kept', () => {
    const r = deltaRig();
    r.io.full = true; // unanswered, so what the stream keeps is what it was told
    r.stream.onRequest(deltaReq(EDS, { node: NODE, resource_names_subscribe: ['web'], initial_resource_versions: { web: 'v1', other: 'v2' } }));
    expect([...(r.registry.list()[0]?.types.get(EDS)?.sentResources ?? [])]).toEqual([['web', 'v1']]);
  });

  test('a version longer than 256 bytes is held as none (it cannot be one fulcrum sent): not kept, the resource sent again', () => {
    const r = deltaRig();
    r.io.full = true;
    r.stream.onRequest(deltaReq(CDS, { node: NODE, initial_resource_versions: { api: 'v'.repeat(257), web: 'w'.repeat(256) } }));
    expect(Object.fromEntries(r.registry.list()[0]?.types.get(CDS)?.sentResources ?? [])).toEqual({ api: '', web: 'w'.repeat(256) });
    r.io.full = false;
    r.stream.onCacheChange();
    expect(namesOf(takeOne(r)).sort()).toEqual(['api', 'web']);
  });

  test('reports are charged to maxSubscriptionNameBytes while they are kept (the stream does not read), and given back once answered', () => {
    const limits = withDefaults({ maxSubscriptionNameBytes: 1_024 });
    const held = (p: string, n: number, versionBytes: number): Record<string, string> =>
      Object.fromEntries(Array.from({ length: n }, (_, i) => [`${p}${i}`.padEnd(100, '-'), 'v'.repeat(versionBytes)]));
    // The review's shape: per type 1,000 name bytes (100 KB versions, not kept), each answered
    // (the names do not exist: removed_resources) before the next type reports more.
    const answered = deltaRig(base(), { limits });
    for (const [i, type] of [CDS, LDS, EDS, RDS].entries()) answered.stream.onRequest(deltaReq(type, { ...(i === 0 ? { node: NODE } : {}), initial_resource_versions: held(String(i), 10, 100_000) }));
    expect(answered.io.failure).toBeUndefined();
    // Unanswered, 800 bytes of CDS reports (names and versions) and 400 of LDS: 1,200 bytes kept.
    const kept = deltaRig(base(), { limits });
    kept.io.full = true;
    kept.stream.onRequest(deltaReq(CDS, { node: NODE, initial_resource_versions: held('c', 4, 100) }));
    expect(kept.io.failure).toBeUndefined();
    kept.stream.onRequest(deltaReq(LDS, { initial_resource_versions: held('l', 2, 100) }));
    expect(kept.io.failure).toMatchObject({ code: 8, message: expect.stringContaining('server.xds.limits.maxSubscriptionNameBytes (1024)') as unknown });
  });

  test('initial versions count only on the first request of a type', () => {
    const r = deltaRig();
    r.stream.onRequest(deltaAck(first(r, EDS, ['web'])));
    r.stream.onRequest(deltaReq(EDS, { resource_names_subscribe: ['api'], initial_resource_versions: { api: version(r, EDS, 'api') ?? '' } }));
    expect(namesOf(takeOne(r))).toEqual(['api']);
  });
});

describe('Delta stream: changes and subscriptions', () => {
  test('after a change that adds and removes, proxy status holds exactly what the client holds', () => {
    const r = deltaRig();
    r.stream.onRequest(deltaAck(first(r, CDS, [])));
    // 'api' goes, 'new' comes: an updates response, then a removals one, for CDS.
    r.publish(resourceSet([...clusterWithEndpoints('web'), ...clusterWithEndpoints('new')]));
    expect(r.take().map(summary)).toEqual(['CDS[new]-[]', 'CDS[]-[api]']);
    const held = r.registry.list()[0]?.types.get(CDS)?.sentResources;
    expect([...(held?.keys() ?? [])].sort()).toEqual(['new', 'web']);
  });

  test('a deleted cluster is removed from EDS, then CDS (removals in reverse order); unchanged ones are not resent', () => {
    const r = deltaRig();
    r.stream.onRequest(deltaAck(first(r, CDS, [])));
    r.stream.onRequest(deltaReq(EDS, { resource_names_subscribe: ['api', 'web'] }));
    r.stream.onRequest(deltaAck(takeOne(r)));
    r.publish(resourceSet(clusterWithEndpoints('web', 8081)));
    expect(r.take().map(summary)).toEqual(['EDS[]-[api]', 'CDS[]-[api]']);
  });

  test('a name that does not exist yet is sent when it appears', () => {
    const r = deltaRig();
    r.stream.onRequest(deltaReq(EDS, { node: NODE, resource_names_subscribe: ['ghost'] }));
    // Told it does not exist (xds_protocol: "Knowing When a Requested Resource Does Not Exist").
    expect(r.take().map(summary)).toEqual(['EDS[]-[ghost]']);
    r.publish(resourceSet(base(), clusterWithEndpoints('ghost', 9090)));
    expect(namesOf(takeOne(r))).toEqual(['ghost']);
  });

  // xds_protocol, "Knowing When a Requested Resource Does Not Exist" (incremental); the review found
  // these names answered with nothing (go-control-plane's LinearCache does the same).
  test('a subscribed name that does not exist comes back in removed_resources, with what does exist', () => {
    const r = deltaRig();
    r.stream.onRequest(deltaReq(EDS, { node: NODE, resource_names_subscribe: ['web', 'ghost'] }));
    expect(r.take().map(summary)).toEqual(['EDS[web]-[ghost]']);
  });

  test('a missing name subscribed later is told once: pushes that leave it missing send nothing more', () => {
    const r = deltaRig();
    r.stream.onRequest(deltaAck(first(r, EDS, ['web'])));
    r.stream.onRequest(deltaReq(EDS, { resource_names_subscribe: ['ghost'] }));
    ackAll(r);
    r.publish(resourceSet(base(), clusterWithEndpoints('other', 1)));
    r.publish(resourceSet(base(), clusterWithEndpoints('web', 9)));
    expect(r.take().map(summary)).toEqual(['EDS[web]-[]']);
    expect(typeState(r.registry, EDS)?.state).toBe('STALE');
  });

  test('wildcard plus a name outside it: unsubscribing the name is answered with it in removed_resources', () => {
    const r = deltaRig();
    expect(summary(first(r, CDS, ['*', 'ghost']))).toBe('CDS[api,web]-[ghost]');
    r.stream.onRequest(deltaReq(CDS, { resource_names_unsubscribe: ['ghost'] }));
    expect(r.take().map(summary)).toEqual(['CDS[]-[ghost]']);
  });

  test('unsubscribe then resubscribe resends the same version', () => {
    const r = deltaRig();
    const resp = first(r, EDS, ['web']);
    r.stream.onRequest(deltaAck(resp));
    r.stream.onRequest(deltaReq(EDS, { resource_names_unsubscribe: ['web'] }));
    expect(r.take()).toEqual([]);
    r.stream.onRequest(deltaReq(EDS, { resource_names_subscribe: ['web'] }));
    expect(versionsOf(takeOne(r))).toEqual(versionsOf(resp));
  });

  test('subscribing again to a held name resends it', () => {
    const r = deltaRig();
    const resp = first(r, EDS, ['web', 'api']);
    r.stream.onRequest(deltaAck(resp, { resource_names_subscribe: ['web'] }));
    expect(versionsOf(takeOne(r))).toEqual({ web: versionsOf(resp).web });
  });

  test('an unsubscribed resource is not pushed any more', () => {
    const r = deltaRig();
    r.stream.onRequest(deltaAck(first(r, EDS, ['web', 'api'])));
    r.stream.onRequest(deltaReq(EDS, { resource_names_unsubscribe: ['web'] }));
    r.publish(resourceSet(clusterWithEndpoints('api', 1), clusterWithEndpoints('web', 2)));
    expect(namesOf(takeOne(r))).toEqual(['api']);
  });

  test('subscription changes are honored whatever the nonce', () => {
    const r = deltaRig(resourceSet(base(), clusterWithEndpoints('third', 3)));
    const resp = first(r, EDS, ['web']);
    r.stream.onRequest(deltaReq(EDS, { resource_names_subscribe: ['api'], response_nonce: 'never-sent' }));
    expect(namesOf(takeOne(r))).toEqual(['api']);
    r.stream.onRequest(deltaReq(EDS, { resource_names_subscribe: ['third'], response_nonce: resp.nonce }));
    expect(namesOf(takeOne(r))).toEqual(['third']);
  });

  test('cluster warming: an updated cluster is followed by its unchanged endpoints', () => {
    const r = deltaRig();
    r.stream.onRequest(deltaAck(first(r, CDS, [])));
    r.stream.onRequest(deltaReq(EDS, { resource_names_subscribe: ['api', 'web'] }));
    const eds = takeOne(r);
    r.stream.onRequest(deltaAck(eds));
    r.publish(resourceSet(base(), cluster('web', 'RANDOM')));
    const [cds, eds2, ...rest] = r.take();
    expect(rest).toEqual([]);
    expect(summary(cds as DeltaDiscoveryResponse)).toBe('CDS[web]-[]');
    expect(versionsOf(eds2 as DeltaDiscoveryResponse)).toEqual({ web: versionsOf(eds).web });
  });

  test('cluster warming: an updated cluster whose assignment is gone is told so, not left waiting for it', () => {
    const r = deltaRig();
    r.stream.onRequest(deltaAck(first(r, CDS, [])));
    r.stream.onRequest(deltaReq(EDS, { resource_names_subscribe: ['api', 'web'] }));
    r.stream.onRequest(deltaAck(takeOne(r)));
    r.publish(resourceSet(clusterWithEndpoints('api', 8080), cluster('web', 'RANDOM')));
    expect(r.take().map(summary)).toEqual(['CDS[web]-[]', 'EDS[]-[web]']);
  });

  test.each([
    ['stops naming a resource it holds', ['*', 'web'], { resource_names_unsubscribe: ['web'] }],
    ['names a resource it holds', ['*'], { resource_names_subscribe: ['web'] }],
  ])('a wildcard client that %s, while not reading, hears of its removal', (_, subscribed, change) => {
    const r = deltaRig();
    r.stream.onRequest(deltaAck(first(r, CDS, subscribed)));
    r.io.full = true;
    r.stream.onRequest(deltaReq(CDS, change));
    r.publish(resourceSet(clusterWithEndpoints('api', 8080)));
    r.io.full = false;
    r.stream.onCacheChange();
    expect(r.take().map(summary)).toEqual(['CDS[]-[web]']);
  });

  test('leaving the wildcard and joining it again resends what the client held only through it', () => {
    const r = deltaRig();
    const all = first(r, CDS, ['*', 'web']);
    r.stream.onRequest(deltaAck(all));
    r.stream.onRequest(deltaReq(CDS, { resource_names_unsubscribe: ['*'] }));
    expect(r.take()).toEqual([]);
    r.stream.onRequest(deltaReq(CDS, { resource_names_subscribe: ['*'] }));
    expect(versionsOf(takeOne(r))).toEqual({ api: versionsOf(all).api });
  });
});

describe('Delta stream: ACK and NACK', () => {
  test('an ACK is recorded and not answered; a later push leaves the type STALE until ACKed', () => {
    const r = deltaRig();
    const resp = first(r, CDS, []);
    expect(typeState(r.registry, CDS)?.state).toBe('STALE');
    r.stream.onRequest(deltaAck(resp));
    expect(r.take()).toEqual([]);
    expect(typeState(r.registry, CDS)?.state).toBe('SYNCED');
    r.publish(resourceSet(base(), cluster('web', 'RANDOM')));
    expect(namesOf(takeOne(r))).toEqual(['web']);
    expect(typeState(r.registry, CDS)?.state).toBe('STALE');
  });

  test('a NACK is recorded and parked: no resend on a plain follow-up; a later change sends only what changed', () => {
    const r = deltaRig();
    const resp = first(r, CDS, []);
    r.stream.onRequest(deltaAck(resp, { error_detail: { code: 3, message: 'cluster api: nope' } }));
    expect(r.take()).toEqual([]);
    expect(typeState(r.registry, CDS)).toMatchObject({ state: 'NACKED', lastNack: { message: 'cluster api: nope' } });
    r.stream.onRequest(deltaReq(CDS));
    expect(r.take()).toEqual([]);
    r.publish(resourceSet(base(), cluster('api', 'RANDOM')));
    expect(namesOf(takeOne(r))).toEqual(['api']);
  });

  /** A stream in sync with base(), then sent `api` changed, which the proxy refuses with `message`. */
  function refusedApi(message: string): DeltaRig {
    const r = deltaRig();
    r.stream.onRequest(deltaAck(first(r, CDS, [])));
    r.publish(resourceSet(base(), cluster('api', 'RANDOM')));
    r.stream.onRequest(deltaAck(takeOne(r), { error_detail: { code: 3, message } }));
    return r;
  }

  test('a refused resource keeps the type NACKED when a later response of other resources is ACKed', () => {
    const r = refusedApi('Error adding/updating cluster(s) api: nope');
    r.publish(resourceSet(base(), cluster('api', 'RANDOM'), cluster('web', 'RANDOM')));
    const web = takeOne(r);
    expect(namesOf(web)).toEqual(['web']);
    r.stream.onRequest(deltaAck(web));
    expect(typeState(r.registry, CDS)).toMatchObject({ state: 'NACKED', lastNack: { message: expect.stringMatching(/api: nope/) } });
    // The operator mends api: it is sent again, and its ACK clears the rejection.
    r.publish(resourceSet(base(), cluster('api', 'MAGLEV'), cluster('web', 'RANDOM')));
    r.stream.onRequest(deltaAck(takeOne(r)));
    expect(typeState(r.registry, CDS)?.state).toBe('SYNCED');
  });

  test('a later NACK that carried a refused resource without naming it means the proxy took it', () => {
    const r = refusedApi('Error adding/updating cluster(s) api: nope');
    r.publish(resourceSet(base(), cluster('api', 'MAGLEV'), cluster('web', 'RANDOM')));
    const both = takeOne(r);
    expect(namesOf(both)).toEqual(['api', 'web']);
    r.stream.onRequest(deltaAck(both, { error_detail: { code: 3, message: 'Error adding/updating cluster(s) web: nope' } }));
    expect([...(r.registry.list()[0]?.types.get(CDS)?.rejected?.keys() ?? [])]).toEqual(['web']);
  });

  test('removing the refused resource clears the rejection', () => {
    const r = refusedApi('Error adding/updating cluster(s) api: nope');
    const webOnly = resourceSet(clusterWithEndpoints('web', 8081), listener('ingress'), routes('ingress', 'web'));
    r.publish(webOnly);
    const removal = r.take().find((x) => x.type_url === CDS);
    expect(removal?.removed_resources).toEqual(['api']);
    r.stream.onRequest(deltaAck(removal!));
    expect(typeState(r.registry, CDS)?.state).toBe('SYNCED');
  });

  /** The names held refused after a response carrying api and web is NACKed with `message`. */
  function refusedOfBoth(message: string): string[] {
    const r = deltaRig();
    r.stream.onRequest(deltaAck(first(r, CDS, [])));
    r.publish(resourceSet(base(), cluster('api', 'RANDOM'), cluster('web', 'RANDOM')));
    r.stream.onRequest(deltaAck(takeOne(r), { error_detail: { code: 3, message } }));
    return [...(r.registry.list()[0]?.types.get(CDS)?.rejected?.keys() ?? [])].sort();
  }

  test('only the resources the error names are held refused; a whole-word match, not a prefix', () => {
    // "api" occurs only inside "apis" and "api-v2", which are other names.
    expect(refusedOfBoth('cluster(s) web: bad; apis and api-v2 fine')).toEqual(['web']);
  });

  test('an error that names no resource holds every resource of the response refused', () => {
    expect(refusedOfBoth('invalid')).toEqual(['api', 'web']);
  });

  test('several responses may be in flight; each is ACKed by its own nonce', () => {
    const r = deltaRig();
    const a = first(r, CDS, []);
    r.publish(resourceSet(base(), cluster('web', 'RANDOM')));
    const b = takeOne(r);
    r.stream.onRequest(deltaAck(a));
    expect(typeState(r.registry, CDS)?.state).toBe('STALE');
    r.stream.onRequest(deltaAck(b));
    expect(typeState(r.registry, CDS)?.state).toBe('SYNCED');
  });
});

describe('Delta stream: ADS ordering (make-before-break)', () => {
  function subscribed(): DeltaRig {
    const r = deltaRig();
    r.stream.onRequest(deltaAck(first(r, CDS, [])));
    for (const [type, names] of [[EDS, ['api', 'web', 'newc']], [LDS, []], [RDS, ['ingress', 'ingress2']]] as const) {
      r.stream.onRequest(deltaReq(type, { resource_names_subscribe: [...names] }));
      r.stream.onRequest(deltaAck(takeOne(r)));
    }
    return r;
  }
  const added = () => resourceSet(base(), clusterWithEndpoints('newc', 7000), listener('ingress2', 10001), routes('ingress', 'newc', 'api', 'web'), routes('ingress2', 'newc'));

  test('additions go out CDS, EDS, LDS, RDS', () => {
    const r = subscribed();
    r.publish(added());
    expect(r.take().map(summary)).toEqual(['CDS[newc]-[]', 'EDS[newc]-[]', 'LDS[ingress2]-[]', 'RDS[ingress,ingress2]-[]']);
  });

  test('removals: updates first, then removals in reverse order (RDS, LDS, EDS, CDS)', () => {
    const r = subscribed();
    r.publish(added());
    ackAll(r);
    r.publish(base());
    expect(r.take().map(summary)).toEqual(['RDS[ingress]-[]', 'RDS[]-[ingress2]', 'LDS[]-[ingress2]', 'EDS[]-[newc]', 'CDS[]-[newc]']);
  });
});

describe('Delta stream: node groups and congestion', () => {
  test('a proxy sees its node group\'s snapshot', () => {
    const r = deltaRig(nodeGroupOfNode());
    expect(namesOf(first(r, CDS, []))).toEqual(['edge']);
  });

  // Review (conformance): the owed empty answer lived only in the call that found the stream congested.
  test('a new wildcard client with nothing to receive is answered once the stream drains', () => {
    const r = deltaRig(resourceSet());
    r.io.full = true;
    r.stream.onRequest(deltaReq(CDS, { node: NODE }));
    expect(r.take()).toEqual([]);
    r.io.full = false;
    r.stream.onCacheChange(); // what ServedStream.written does once the queue drains
    const resp = takeOne(r);
    expect(resp.resources).toEqual([]);
    r.stream.onRequest(deltaAck(resp));
    r.stream.onCacheChange();
    expect(r.take()).toEqual([]);
  });

  test('while the client is not reading, changes are held and coalesced into one response on drain', () => {
    const r = deltaRig();
    r.stream.onRequest(deltaAck(first(r, CDS, [])));
    r.io.full = true;
    r.publish(resourceSet(base(), clusterWithEndpoints('x', 1)));
    r.publish(resourceSet(base(), clusterWithEndpoints('y', 2)));
    expect(r.take()).toEqual([]);
    r.io.full = false;
    r.stream.onCacheChange();
    expect(r.take().map(summary)).toEqual(['CDS[y]-[]']);
  });
});

describe('Delta stream: proxy status after the client drops resources', () => {
  const inStatus = (r: DeltaRig, type: string): string[] => [...(r.registry.list()[0]?.types.get(type as typeof CDS)?.sentResources.keys() ?? [])].sort();

  test('leaving the wildcard: status shows only what the client still holds, also after a change that sends nothing', () => {
    const r = deltaRig(resourceSet(clusterWithEndpoints('a'), clusterWithEndpoints('b'), clusterWithEndpoints('c')));
    r.stream.onRequest(deltaReq(CDS, { node: NODE, resource_names_subscribe: ['*', 'a'] }));
    ackAll(r);
    r.stream.onRequest(deltaReq(CDS, { resource_names_unsubscribe: ['*'] }));
    ackAll(r);
    expect(inStatus(r, CDS)).toEqual(['a']);
    r.publish(resourceSet(clusterWithEndpoints('a'), clusterWithEndpoints('b', 9999), clusterWithEndpoints('c')));
    expect(r.take()).toEqual([]);
    expect(inStatus(r, CDS)).toEqual(['a']);
  });

  test('a name unsubscribed, deleted, then subscribed again: status never claims the client holds it', () => {
    const r = deltaRig(resourceSet(clusterWithEndpoints('a'), clusterWithEndpoints('b')));
    r.stream.onRequest(deltaReq(CDS, { node: NODE, resource_names_subscribe: ['*'] }));
    r.stream.onRequest(deltaReq(EDS, { resource_names_subscribe: ['a', 'b'] }));
    ackAll(r);
    r.stream.onRequest(deltaReq(EDS, { resource_names_unsubscribe: ['b'] }));
    ackAll(r);
    expect(inStatus(r, EDS)).toEqual(['a']);
    r.publish(resourceSet(clusterWithEndpoints('a')));
    ackAll(r);
    r.stream.onRequest(deltaReq(EDS, { resource_names_subscribe: ['b'] }));
    // b does not exist and the client does not hold it: told so (removed), nothing held.
    expect(r.take().map(summary)).toEqual(['EDS[]-[b]']);
    expect(inStatus(r, EDS)).toEqual(['a']);
  });

  test('unsubscribing the one resource a NACK refused: what the client kept reads SYNCED, in the type and per resource', () => {
    const r = deltaRig(resourceSet(clusterWithEndpoints('a'), clusterWithEndpoints('b')));
    r.stream.onRequest(deltaReq(EDS, { node: NODE, resource_names_subscribe: ['a'] }));
    ackAll(r);
    r.stream.onRequest(deltaReq(EDS, { resource_names_subscribe: ['b'] }));
    for (const resp of r.take()) r.stream.onRequest(deltaAck(resp, { error_detail: { code: 3, message: 'b: bad' } }));
    const t = r.registry.list()[0]?.types.get(EDS) as TypeStatus;
    expect([resourceSyncState(t, 'a'), resourceSyncState(t, 'b'), syncState(t)]).toEqual(['SYNCED', 'NACKED', 'NACKED']);
    r.stream.onRequest(deltaReq(EDS, { resource_names_unsubscribe: ['b'] }));
    expect(r.take()).toEqual([]);
    expect(inStatus(r, EDS)).toEqual(['a']);
    expect([resourceSyncState(t, 'a'), syncState(t)]).toEqual(['SYNCED', 'SYNCED']);
  });

  test('unsubscribing a name of a type never sent makes no status for it', () => {
    const r = deltaRig(resourceSet(clusterWithEndpoints('a')));
    r.stream.onRequest(deltaReq(EDS, { node: NODE, resource_names_unsubscribe: ['yyy'] }));
    expect(r.take()).toEqual([]);
    expect(r.registry.list()[0]?.types.has(EDS)).toBe(false);
  });

  test('a wildcard client that stops naming a resource still holds it, and status says so', () => {
    const r = deltaRig(resourceSet(clusterWithEndpoints('a'), clusterWithEndpoints('b')));
    r.stream.onRequest(deltaReq(CDS, { node: NODE, resource_names_subscribe: ['*', 'a'] }));
    ackAll(r);
    r.stream.onRequest(deltaReq(CDS, { resource_names_unsubscribe: ['a'] }));
    ackAll(r);
    expect(inStatus(r, CDS)).toEqual(['a', 'b']);
  });
});
