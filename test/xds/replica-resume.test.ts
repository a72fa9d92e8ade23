/**
 * A client moving between two replicas that serve the same state (two caches filled alike, two
 * stream state machines): versions come from content, so the second replica recognizes what the
 * client holds and sends nothing it already has.
 */
import { createHash } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { TYPE } from '../../src/xds/envoy-api.js';
import { namesOf, versionsOf } from '../support/xds-client.js';
import {
  base, clusterWithEndpoints, deltaAck, deltaReq, deltaRig, NODE, resourceSet, sotwAck, sotwReq, sotwRig, takeOne, typeState,
} from './stream-fixture.js';

const { cluster: CDS, endpoint: EDS } = TYPE;

describe('SotW: a client moving to another replica', () => {
  /** Subscribes CDS (wildcard) and EDS on replica A, ACKs both; returns the accepted versions. */
  function syncedOnA(): { cds: string; eds: string } {
    const a = sotwRig();
    a.stream.onRequest(sotwReq(CDS, [], { node: NODE }));
    const cds = takeOne(a);
    a.stream.onRequest(sotwAck(cds, []));
    a.stream.onRequest(sotwReq(EDS, ['api', 'web']));
    const eds = takeOne(a);
    a.stream.onRequest(sotwAck(eds, ['api', 'web']));
    expect(a.take()).toEqual([]);
    return { cds: cds.version_info, eds: eds.version_info };
  }

  test('announces the version it accepted on A: B sends no CDS (a wildcard) and reports it SYNCED; its EDS list is answered', () => {
    const held = syncedOnA();
    const b = sotwRig();
    b.stream.onRequest(sotwReq(CDS, [], { node: NODE, version_info: held.cds }));
    expect(b.take()).toEqual([]);
    expect(typeState(b.registry, CDS)?.state).toBe('SYNCED');
    // An EDS list's version does not say which of its names the client still holds (one it
    // dropped was never answered): the list is sent, as the same content and version.
    b.stream.onRequest(sotwReq(EDS, ['api', 'web'], { version_info: held.eds }));
    const eds = takeOne(b);
    expect(namesOf(eds)).toEqual(['api', 'web']);
    expect(eds.version_info).toBe(held.eds);
  });

  test('announcing the version form of earlier releases (a proxy reconnecting after an upgrade), it is sent nothing either; another version is answered', () => {
    const a = sotwRig();
    a.stream.onRequest(sotwReq(CDS, [], { node: NODE }));
    const cds = takeOne(a);
    // What an earlier release sent as version_info for the same content: a hash of the names and versions in name order.
    const h = createHash('sha256');
    const versions = a.cache.snapshotFor('').resources(CDS);
    for (const name of namesOf(cds)) h.update(name).update('\0').update(versions.get(name)?.version ?? '').update('\0').update('\n');
    const held = h.digest('base64url').slice(0, 16);
    expect(held).not.toBe(cds.version_info);
    const b = sotwRig();
    b.stream.onRequest(sotwReq(CDS, [], { node: NODE, version_info: held }));
    expect(b.take()).toEqual([]);
    expect(typeState(b.registry, CDS)?.state).toBe('SYNCED');
    const c = sotwRig();
    c.stream.onRequest(sotwReq(CDS, [], { node: NODE, version_info: `${held.slice(0, 15)}${held.endsWith('x') ? 'y' : 'x'}` }));
    expect(namesOf(takeOne(c))).toEqual(namesOf(cds));
  });

  test('is sent the change when B serves newer content, and only the changed EDS resource', () => {
    const held = syncedOnA();
    const b = sotwRig(resourceSet(base(), clusterWithEndpoints('web', 9999)));
    b.stream.onRequest(sotwReq(CDS, [], { node: NODE, version_info: held.cds }));
    // The cluster resource is unchanged (only its endpoints moved): CDS needs nothing.
    expect(b.take()).toEqual([]);
    b.stream.onRequest(sotwReq(EDS, ['api', 'web'], { version_info: held.eds }));
    // The first response on a stream carries the whole subscription (a new stream starts from scratch).
    expect(namesOf(takeOne(b))).toEqual(['api', 'web']);
  });

  test('after an unsubscribe and resubscribe on B, the resource is sent again', () => {
    const held = syncedOnA();
    const b = sotwRig();
    b.stream.onRequest(sotwReq(CDS, [], { node: NODE, version_info: held.cds }));
    b.stream.onRequest(sotwReq(EDS, ['api', 'web'], { version_info: held.eds }));
    expect(namesOf(takeOne(b))).toEqual(['api', 'web']);
    // Dropping a name needs no EDS answer (absence is not deletion there)...
    b.stream.onRequest(sotwReq(EDS, ['api'], { version_info: held.eds }));
    expect(b.take()).toEqual([]);
    // ...but asking for it again must be answered, even though the content did not change.
    b.stream.onRequest(sotwReq(EDS, ['api', 'web'], { version_info: held.eds }));
    expect(namesOf(takeOne(b))).toEqual(['api', 'web']);
  });
});

describe('Delta: a client moving to another replica with initial_resource_versions', () => {
  test('receives nothing it already has, and B reports it SYNCED with what it holds', () => {
    const a = deltaRig();
    a.stream.onRequest(deltaReq(EDS, { node: NODE, resource_names_subscribe: ['api', 'web'] }));
    const held = takeOne(a);
    a.stream.onRequest(deltaAck(held));
    const initial = versionsOf(held);
    expect(Object.keys(initial).sort()).toEqual(['api', 'web']);

    const b = deltaRig();
    b.stream.onRequest(deltaReq(EDS, { node: NODE, resource_names_subscribe: ['api', 'web'], initial_resource_versions: initial }));
    expect(b.take()).toEqual([]);
    expect(typeState(b.registry, EDS)?.state).toBe('SYNCED');
    const record = b.registry.list()[0];
    expect(record?.types.get(EDS)?.sentResources).toEqual(new Map(Object.entries(initial)));
  });

  test('receives only what changed when B serves newer content', () => {
    const a = deltaRig();
    a.stream.onRequest(deltaReq(EDS, { node: NODE, resource_names_subscribe: ['api', 'web'] }));
    const held = takeOne(a);
    const initial = versionsOf(held);
    const b = deltaRig(resourceSet(base(), clusterWithEndpoints('web', 9999)));
    b.stream.onRequest(deltaReq(EDS, { node: NODE, resource_names_subscribe: ['api', 'web'], initial_resource_versions: initial }));
    const update = takeOne(b);
    expect(namesOf(update)).toEqual(['web']);
    expect(typeState(b.registry, EDS)?.state).toBe('STALE');
    b.stream.onRequest(deltaAck(update));
    expect(typeState(b.registry, EDS)?.state).toBe('SYNCED');
  });
});
