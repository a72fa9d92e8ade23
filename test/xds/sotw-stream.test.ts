/**
 * The State-of-the-World stream state machine alone: requests go in through onRequest, cache
 * changes through onCacheChange, and responses come out of a fake StreamIo. Synchronous and
 * deterministic; the gRPC conversations in protocol-*.test.ts cover the wiring.
 */
import { describe, expect, test } from 'vitest';
import { TYPE } from '../../src/xds/envoy-api.js';
import { DEFAULT_GROUP } from '../../src/xds/resource-set.js';
import { namesOf, SHORT, type DiscoveryResponse } from '../support/xds-client.js';
import {
  base, cluster, clusterWithEndpoints, endpoints, groups, listener, NODE, nodeGroupOfNode, resourceSet, routes, sotwAck, sotwReq, sotwRig, takeOne, typeState, type SotwRig,
} from './stream-fixture.js';

const { cluster: CDS, endpoint: EDS, listener: LDS, route: RDS } = TYPE;

/** Sends the first request (with node) and returns the one response it must produce. */
function first(r: SotwRig, type: string, names: string[]): DiscoveryResponse {
  r.stream.onRequest(sotwReq(type, names, { node: NODE }));
  return takeOne(r);
}

describe('SotW stream: identity and bad input', () => {
  test('a first request without node fails the stream with INVALID_ARGUMENT and sends nothing', () => {
    const r = sotwRig();
    r.stream.onRequest(sotwReq(CDS, []));
    expect(r.io.failure).toMatchObject({ code: 3, message: expect.stringMatching(/node/) });
    expect(r.take()).toEqual([]);
    expect(r.registry.size).toBe(0);
  });

  test('later requests may omit node', () => {
    const r = sotwRig();
    r.stream.onRequest(sotwAck(first(r, CDS, []), []));
    r.stream.onRequest(sotwReq(EDS, ['web']));
    expect(namesOf(takeOne(r))).toEqual(['web']);
    expect(r.registry.list()[0]?.node.id).toBe(NODE.id);
  });

  test('a type URL that is none fails the stream naming it; a type ADS does not serve is left unanswered', () => {
    const r = sotwRig();
    r.stream.onRequest(sotwReq('x.Nope', [], { node: NODE }));
    expect(r.io.failure).toMatchObject({ code: 3, message: expect.stringContaining('x.Nope') });
    const kept = sotwRig();
    kept.stream.onRequest(sotwReq('type.googleapis.com/x.Nope', [], { node: NODE }));
    expect(kept.io.failure).toBeUndefined();
    expect(kept.take()).toEqual([]);
  });

  test('a per-type stream refuses another type, and takes an empty type_url as its own', () => {
    const ok = sotwRig(base(), { fixedType: CDS });
    expect(first(ok, '', []).type_url).toBe(CDS);
    const wrong = sotwRig(base(), { fixedType: CDS });
    wrong.stream.onRequest(sotwReq(LDS, [], { node: NODE }));
    expect(wrong.io.failure?.message).toContain(LDS);
  });

  test('more names than the limit fail the stream with RESOURCE_EXHAUSTED', () => {
    const r = sotwRig(base(), { maxResourceNames: 2 });
    r.stream.onRequest(sotwReq(EDS, ['a', 'b', 'c'], { node: NODE }));
    expect(r.io.failure).toMatchObject({ code: 8, message: expect.stringContaining('limit is 2') });
  });
});

describe('SotW stream: ACK, NACK, nonces', () => {
  test('an ACK is recorded and not answered', () => {
    const r = sotwRig();
    const cds = first(r, CDS, []);
    expect(typeState(r.registry, CDS)?.state).toBe('STALE');
    r.stream.onRequest(sotwAck(cds, []));
    expect(r.take()).toEqual([]);
    expect(typeState(r.registry, CDS)?.state).toBe('SYNCED');
  });

  test('a NACK (error_detail) is recorded and parked: no resend, even when asked again; new content is sent', () => {
    const r = sotwRig();
    const cds = first(r, CDS, []);
    const nack = sotwReq(CDS, [], { response_nonce: cds.nonce, error_detail: { code: 3, message: 'bad cluster' } });
    r.stream.onRequest(nack);
    expect(r.take()).toEqual([]);
    expect(typeState(r.registry, CDS)).toMatchObject({ state: 'NACKED', lastNack: { message: 'bad cluster' } });
    r.stream.onRequest(nack);
    expect(r.take()).toEqual([]);
    // Content unrelated to CDS changes: still nothing for CDS.
    r.publish(resourceSet(clusterWithEndpoints('api', 9999), clusterWithEndpoints('web', 8081), listener('ingress'), routes('ingress', 'api', 'web')));
    expect(r.take()).toEqual([]);
    r.publish(resourceSet(cluster('api', 'RANDOM'), endpoints('api', 9999), clusterWithEndpoints('web', 8081)));
    const fixed = takeOne(r);
    expect(fixed.version_info).not.toBe(cds.version_info);
    expect(namesOf(fixed)).toEqual(['api', 'web']);
  });

  test('an incremental EDS push refused stays NACKED when a later push of another assignment is ACKed, until it is sent again and ACKed', () => {
    const r = sotwRig();
    r.stream.onRequest(sotwAck(first(r, EDS, ['api', 'web']), ['api', 'web']));
    const ports = (api: number, web: number) => resourceSet(clusterWithEndpoints('api', api), clusterWithEndpoints('web', web), listener('ingress'), routes('ingress', 'api', 'web'));
    r.publish(ports(9001, 8081));
    const refused = takeOne(r);
    expect(namesOf(refused)).toEqual(['api']);
    r.stream.onRequest(sotwAck(refused, ['api', 'web'], { error_detail: { code: 3, message: 'ClusterLoadAssignment api: bad' } }));
    // web changes alone: an incremental push that carries web only, ACKed.
    r.publish(ports(9001, 9002));
    const other = takeOne(r);
    expect(namesOf(other)).toEqual(['web']);
    r.stream.onRequest(sotwAck(other, ['api', 'web']));
    expect(typeState(r.registry, EDS)).toMatchObject({ state: 'NACKED', lastNack: { message: 'ClusterLoadAssignment api: bad' } });
    // api changes again: sent, ACKed, the type is in sync.
    r.publish(ports(9003, 9002));
    const again = takeOne(r);
    expect(namesOf(again)).toEqual(['api']);
    r.stream.onRequest(sotwAck(again, ['api', 'web']));
    expect(typeState(r.registry, EDS)?.state).toBe('SYNCED');
  });

  test('a NACK overtaken by a push is kept (nothing is sent for it): what that response carried stays refused', () => {
    const r = sotwRig();
    const all = first(r, EDS, ['api', 'web']);
    expect(namesOf(all)).toEqual(['api', 'web']);
    r.publish(resourceSet(clusterWithEndpoints('api', 8080), clusterWithEndpoints('web', 9002), listener('ingress'), routes('ingress', 'api', 'web')));
    const webOnly = takeOne(r);
    expect(namesOf(webOnly)).toEqual(['web']);
    // The client answers the first response after the push went out: a stale nonce.
    r.stream.onRequest(sotwAck(all, ['api', 'web'], { error_detail: { code: 3, message: 'invalid' } }));
    expect(r.take()).toEqual([]);
    r.stream.onRequest(sotwAck(webOnly, ['api', 'web'], { error_detail: { code: 3, message: 'invalid' } }));
    expect([...(r.registry.list()[0]?.types.get(EDS)?.rejected?.keys() ?? [])].sort()).toEqual(['api', 'web']);
  });

  test('a NACK does not need a matching version: version_info is what the client kept', () => {
    const r = sotwRig();
    const cds = first(r, CDS, []);
    r.stream.onRequest(sotwReq(CDS, [], { version_info: '', response_nonce: cds.nonce, error_detail: { code: 13, message: '' } }));
    expect(typeState(r.registry, CDS)).toMatchObject({ state: 'NACKED', lastNack: { message: 'code 13' } });
  });

  test('a request with a stale nonce is ignored even if it changes the subscription; the current nonce is honored', () => {
    const r = sotwRig();
    const eds = first(r, EDS, ['web']);
    r.stream.onRequest(sotwAck(eds, ['web']));
    r.publish(resourceSet(clusterWithEndpoints('api', 8080), clusterWithEndpoints('web', 9090)));
    const pushed = takeOne(r);
    expect(pushed.nonce).not.toBe(eds.nonce);
    r.stream.onRequest(sotwAck(eds, ['web', 'api']));
    expect(r.take()).toEqual([]);
    r.stream.onRequest(sotwAck(pushed, ['web', 'api']));
    expect(namesOf(takeOne(r))).toEqual(['api', 'web']);
  });

  test('nonces are per type: an ACK of an older CDS nonce after an EDS response counts', () => {
    const r = sotwRig();
    const cds = first(r, CDS, []);
    r.stream.onRequest(sotwReq(EDS, ['web']));
    const eds = takeOne(r);
    r.stream.onRequest(sotwAck(cds, []));
    r.stream.onRequest(sotwAck(eds, ['web']));
    expect(r.take()).toEqual([]);
    expect(typeState(r.registry, CDS)?.state).toBe('SYNCED');
    expect(typeState(r.registry, EDS)?.state).toBe('SYNCED');
  });
});

describe('SotW stream: wildcard', () => {
  test('"*" subscribes CDS to everything, new clusters are pushed with the full set', () => {
    const r = sotwRig();
    const cds = first(r, CDS, ['*', 'web']);
    expect(namesOf(cds)).toEqual(['api', 'web']);
    r.stream.onRequest(sotwAck(cds, ['*']));
    r.publish(resourceSet(base(), clusterWithEndpoints('new', 1)));
    expect(namesOf(takeOne(r))).toEqual(['api', 'new', 'web']);
  });

  test('an empty first CDS request is a legacy wildcard and stays one on ACK; naming a resource ends it', () => {
    const r = sotwRig();
    const cds = first(r, CDS, []);
    expect(namesOf(cds)).toEqual(['api', 'web']);
    r.stream.onRequest(sotwAck(cds, []));
    r.publish(resourceSet(base(), clusterWithEndpoints('new', 1)));
    const pushed = takeOne(r);
    expect(namesOf(pushed)).toEqual(['api', 'new', 'web']);
    r.stream.onRequest(sotwAck(pushed, ['web']));
    expect(namesOf(takeOne(r))).toEqual(['web']);
  });

  test('an empty first EDS request is not a wildcard', () => {
    const r = sotwRig();
    r.stream.onRequest(sotwReq(EDS, [], { node: NODE }));
    expect(r.take()).toEqual([]);
  });

  test('a wildcard request is answered even when there is nothing to send', () => {
    const r = sotwRig(resourceSet());
    const cds = first(r, CDS, []);
    expect(cds.resources).toEqual([]);
    expect(cds.nonce).not.toBe('');
  });
});

describe('SotW stream: what responses carry', () => {
  test('CDS carries the full set: a removed cluster is absent from the next response', () => {
    const r = sotwRig();
    r.stream.onRequest(sotwAck(first(r, CDS, []), []));
    r.publish(resourceSet(clusterWithEndpoints('web', 8081)));
    expect(namesOf(takeOne(r))).toEqual(['web']);
  });

  test('EDS pushes carry only the changed resources; unrequested changes are not pushed', () => {
    const r = sotwRig(resourceSet(base(), clusterWithEndpoints('other', 1)));
    const eds = first(r, EDS, ['api', 'web']);
    expect(namesOf(eds)).toEqual(['api', 'web']);
    r.stream.onRequest(sotwAck(eds, ['api', 'web']));
    r.publish(resourceSet(base(), clusterWithEndpoints('other', 2)));
    expect(r.take()).toEqual([]);
    r.publish(resourceSet(clusterWithEndpoints('api', 8080), clusterWithEndpoints('web', 1234)));
    const pushed = takeOne(r);
    expect(namesOf(pushed)).toEqual(['web']);
    expect(pushed.version_info).not.toBe(eds.version_info);
  });

  test('names that do not exist yet get nothing, then are sent when they appear', () => {
    const r = sotwRig();
    r.stream.onRequest(sotwReq(EDS, ['ghost'], { node: NODE }));
    expect(r.take()).toEqual([]);
    r.publish(resourceSet(base(), clusterWithEndpoints('ghost', 9090)));
    expect(namesOf(takeOne(r))).toEqual(['ghost']);
  });

  test('an RDS name that exists is answered at once; a missing one is sent when it appears', () => {
    const r = sotwRig();
    const rds = first(r, RDS, ['ingress', 'ingress2']);
    expect(namesOf(rds)).toEqual(['ingress']);
    r.stream.onRequest(sotwAck(rds, ['ingress', 'ingress2']));
    r.publish(resourceSet(base(), routes('ingress2', 'web')));
    expect(namesOf(takeOne(r))).toEqual(['ingress2']);
  });
});

describe('SotW stream: subscriptions', () => {
  test('unsubscribe then resubscribe resends, at the same version with a new nonce', () => {
    const r = sotwRig();
    const eds = first(r, EDS, ['web']);
    r.stream.onRequest(sotwAck(eds, ['web']));
    r.stream.onRequest(sotwAck(eds, []));
    expect(r.take()).toEqual([]);
    r.stream.onRequest(sotwAck(eds, ['web']));
    const again = takeOne(r);
    expect(again.version_info).toBe(eds.version_info);
    expect(again.nonce).not.toBe(eds.nonce);
    expect(namesOf(again)).toEqual(['web']);
  });

  test('an empty EDS list after a non-empty one unsubscribes from everything', () => {
    const r = sotwRig();
    const eds = first(r, EDS, ['web']);
    r.stream.onRequest(sotwAck(eds, []));
    r.publish(resourceSet(clusterWithEndpoints('api', 1), clusterWithEndpoints('web', 2)));
    expect(r.take()).toEqual([]);
  });

  test('cluster warming: a CDS push is followed by EDS for the same names at the same version', () => {
    const r = sotwRig();
    r.stream.onRequest(sotwAck(first(r, CDS, []), []));
    r.stream.onRequest(sotwReq(EDS, ['api', 'web']));
    const eds = takeOne(r);
    r.stream.onRequest(sotwAck(eds, ['api', 'web']));
    r.publish(resourceSet(base(), cluster('web', 'RANDOM')));
    const [cds, again, ...rest] = r.take();
    expect(rest).toEqual([]);
    expect(cds?.type_url).toBe(CDS);
    expect(again?.type_url).toBe(EDS);
    expect(again?.version_info).toBe(eds.version_info);
    expect(namesOf(again as DiscoveryResponse)).toEqual(['api', 'web']);
    // Envoy then asks again with the names it holds: the answer it needs is already on its way.
    r.stream.onRequest(sotwAck(again as DiscoveryResponse, ['api', 'web']));
    expect(r.take()).toEqual([]);
  });

  test('cluster warming: an EDS request after an unanswered CDS push is answered even though nothing changed', () => {
    const r = sotwRig();
    r.stream.onRequest(sotwReq(EDS, ['web'], { node: NODE }));
    const eds = takeOne(r);
    r.stream.onRequest(sotwAck(eds, ['web']));
    r.stream.onRequest(sotwReq(CDS, []));
    const cds = takeOne(r);
    // The CDS answer marked EDS for warming; Envoy's re-request with the same names gets an answer.
    r.stream.onRequest(sotwAck(eds, ['web']));
    const again = takeOne(r);
    expect(again.version_info).toBe(eds.version_info);
    expect(again.nonce).not.toBe(eds.nonce);
    r.stream.onRequest(sotwAck(cds, []));
    expect(r.take()).toEqual([]);
  });
});

describe('SotW stream: ADS ordering (make-before-break)', () => {
  function subscribed(): SotwRig {
    const r = sotwRig();
    r.stream.onRequest(sotwAck(first(r, CDS, []), []));
    for (const [type, names] of [[EDS, ['api', 'web', 'newc']], [LDS, []], [RDS, ['ingress', 'ingress2']]] as const) {
      r.stream.onRequest(sotwReq(type, [...names]));
      r.stream.onRequest(sotwAck(takeOne(r), [...names]));
    }
    return r;
  }
  const added = () =>
    resourceSet(base(), clusterWithEndpoints('newc', 7000), listener('ingress2', 10001), routes('ingress', 'newc', 'api', 'web'), routes('ingress2', 'newc'));

  test('additions go out CDS, EDS, LDS, RDS', () => {
    const r = subscribed();
    r.publish(added());
    const got = r.take();
    expect(got.map((x) => SHORT[x.type_url])).toEqual(['CDS', 'EDS', 'LDS', 'RDS']);
    // EDS follows a CDS push in full (cluster warming), not only with the new name.
    expect(got.map(namesOf)).toEqual([['api', 'newc', 'web'], ['api', 'newc', 'web'], ['ingress', 'ingress2'], ['ingress', 'ingress2']]);
  });

  test('removals: CDS/LDS keep the removed resource until the routes moved away, then drop it', () => {
    const r = subscribed();
    r.publish(added());
    for (const resp of r.take()) r.stream.onRequest(sotwAck(resp, resp.type_url === EDS ? ['api', 'web', 'newc'] : resp.type_url === RDS ? ['ingress', 'ingress2'] : []));
    r.publish(base());
    const got = r.take().map((x) => `${SHORT[x.type_url]}[${namesOf(x).join(',')}]`);
    // RDS no longer routes to newc before CDS drops it, and LDS drops ingress2 after that RDS.
    expect(got).toEqual(['RDS[ingress]', 'LDS[ingress]', 'CDS[api,web]']);
  });
});

describe('SotW stream: node groups, congestion', () => {
  test('a proxy sees its node group\'s snapshot', () => {
    const r = sotwRig(nodeGroupOfNode());
    expect(namesOf(first(r, CDS, []))).toEqual(['edge']);
  });

  test('while the client is not reading, pushes are held; on drain only the latest state goes out', () => {
    const r = sotwRig();
    r.stream.onRequest(sotwAck(first(r, CDS, []), []));
    r.io.full = true;
    r.publish(resourceSet(base(), clusterWithEndpoints('x', 1)));
    r.publish(resourceSet(base(), clusterWithEndpoints('x', 1), clusterWithEndpoints('y', 2)));
    expect(r.take()).toEqual([]);
    r.io.full = false;
    r.stream.onCacheChange();
    expect(namesOf(takeOne(r))).toEqual(['api', 'web', 'x', 'y']);
  });

  test('a client that stops reading after the first of a make-before-break pair is sent its group\'s loss in full', () => {
    // Found by a review: the merged (keep-removed) response went out, the queue filled before the
    // final one, and when the node group went away again the default group's snapshot was the very
    // content the type had last been settled on, so the client kept the group's clusters.
    const shared = resourceSet(cluster('a'), cluster('b'));
    const r = sotwRig(groups({ [DEFAULT_GROUP]: shared }));
    const send = r.io.send.bind(r.io);
    let fillOnSend = false;
    r.io.send = (parts) => {
      send(parts);
      if (fillOnSend) r.io.full = true;
    };
    const all = first(r, CDS, []);
    r.stream.onRequest(sotwAck(all, []));
    fillOnSend = true;
    r.publish(groups({ [DEFAULT_GROUP]: shared, [NODE.cluster]: resourceSet(cluster('a', 'RANDOM')) }));
    const merged = takeOne(r);
    expect(namesOf(merged)).toEqual(['a', 'b']); // a as its group has it, b kept until the final response
    fillOnSend = false;
    r.publish(groups({ [DEFAULT_GROUP]: shared })); // the group goes away: the default group is unchanged
    r.io.full = false;
    r.stream.onCacheChange();
    r.stream.onRequest(sotwAck(merged, []));
    expect(r.take().map((x) => x.version_info)).toEqual([all.version_info]);
  });

  test('a closed stream sends nothing and unregisters', () => {
    const r = sotwRig();
    first(r, CDS, []);
    r.stream.close();
    expect(r.registry.size).toBe(0);
    r.publish(resourceSet(clusterWithEndpoints('x', 1)));
    expect(r.take()).toEqual([]);
  });
});
