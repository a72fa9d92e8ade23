/**
 * First requests listing the same names (every proxy's first EDS request in a reconnect storm)
 * share their decode, limit check and subscription: SotW by the names' encoding, Delta by the list.
 * What each stream is sent, and what each server's limits refuse, must not depend on which stream
 * came first.
 */
import { pino } from 'pino';
import { expect, test } from 'vitest';
import { XdsCache } from '../../src/xds/cache.js';
import { envoyType, TYPE } from '../../src/xds/envoy-api.js';
import { withDefaults, type XdsLimits } from '../../src/xds/limits.js';
import { ProxyRegistry } from '../../src/xds/proxy-status.js';
import { internNames, namesOf } from '../../src/xds/request-names.js';
import { SotwStream } from '../../src/xds/sotw-stream.js';
import { DeltaStream } from '../../src/xds/delta-stream.js';
import { DeltaTypeState, listedSubscription } from '../../src/xds/delta-type-state.js';
import { decodeDiscoveryRequest, type DiscoveryRequest } from '../../src/xds/wire.js';
import { decodeDiscoveryResponse, namesOf as responseNames } from '../support/xds-client.js';
import { base, deltaReq, FakeIo, groups } from './stream-fixture.js';

const requestType = envoyType('envoy.service.discovery.v3.DiscoveryRequest');
const encoded = (m: Record<string, unknown>): DiscoveryRequest =>
  decodeDiscoveryRequest(Buffer.from(requestType.encode(requestType.fromObject(m)).finish()));

function open(limits?: XdsLimits, protocol: 'sotw' | 'delta' = 'sotw'): { stream: SotwStream | DeltaStream; io: FakeIo } {
  const cache = new XdsCache();
  cache.update(groups(base()));
  const io = new FakeIo();
  const deps = { cache, registry: new ProxyRegistry(() => 0), log: pino({ level: 'silent' }), maxResourceNames: 100, controlPlaneId: 't', ...(limits ? { limits } : {}) };
  return { stream: protocol === 'sotw' ? new SotwStream(deps, io, 'ads') : new DeltaStream(deps, io, 'ads-delta'), io };
}

test('equal encodings decode once into one frozen list', () => {
  const a = encoded({ type_url: TYPE.endpoint, resource_names: ['web', 'api'] }).resource_names_bytes;
  const b = encoded({ type_url: TYPE.endpoint, resource_names: ['web', 'api'], response_nonce: 'x' }).resource_names_bytes;
  if (!a || !b) throw new Error('names kept encoded expected');
  const names = namesOf(internNames(a));
  expect(names).toEqual(['web', 'api']);
  expect(Object.isFrozen(names)).toBe(true);
  expect(namesOf(internNames(b))).toBe(names);
});

test('a shared list accepted under one server\'s limits is still refused under stricter ones', () => {
  const long = 'n'.repeat(40);
  const request = (node: string) => encoded({ node: { id: node }, type_url: TYPE.endpoint, resource_names: ['web', long] });
  const lenient = open();
  (lenient.stream as SotwStream).onRequest(request('a'));
  expect(lenient.io.failure).toBeUndefined();
  const strict = open(withDefaults({ maxNameBytes: 32 }));
  (strict.stream as SotwStream).onRequest(request('b'));
  expect(strict.io.failure).toMatchObject({ code: 3, message: expect.stringContaining('40 bytes') });
});

test('streams sending the same names encoded alike are answered alike, and ACKs are not answered', () => {
  const sent = ['one', 'two'].map((node) => {
    const { stream: s, io } = open();
    const stream = s as SotwStream;
    stream.onRequest(encoded({ node: { id: node }, type_url: TYPE.endpoint, resource_names: ['web', 'api'] }));
    const [resp] = io.sent.splice(0).map(decodeDiscoveryResponse);
    if (!resp) throw new Error('no response');
    stream.onRequest(encoded({ type_url: TYPE.endpoint, resource_names: ['web', 'api'], version_info: resp.version_info, response_nonce: resp.nonce }));
    expect(io.sent).toEqual([]);
    return responseNames(resp);
  });
  expect(sent[0]).toEqual(sent[1]);
  expect(sent[0]?.length).toBeGreaterThan(0);
});

test('a Delta state takes a listed subscription whole: the same set and key as subscribing name by name', () => {
  const byName = new DeltaTypeState();
  for (const n of ['b', 'a', 'c', 'a']) byName.subscribe(n);
  byName.subscriptionChanged();
  const sub = listedSubscription(['b', 'a', 'c', 'a'], (n) => Buffer.byteLength(n));
  expect(listedSubscription(['b', 'a', 'c', 'a'], (n) => Buffer.byteLength(n))).toBe(sub);
  expect(sub.bytes).toBe(3);
  const listed = new DeltaTypeState();
  listed.subscribeListed(sub);
  expect(listed.names).toBe(byName.names);
  expect(listed.subKey).toBe(byName.subKey);
  // Copy-on-write as ever: a change to one never shows in the other.
  listed.subscribe('d');
  listed.subscriptionChanged();
  expect([...byName.names].sort()).toEqual(['a', 'b', 'c']);
  expect([...listed.names].sort()).toEqual(['a', 'b', 'c', 'd']);
});

test('Delta streams listing the same names are sent the same; one over the subscription limit is refused as before', () => {
  const sent = ['one', 'two'].map((node) => {
    const { stream, io } = open(undefined, 'delta');
    (stream as DeltaStream).onRequest(deltaReq(TYPE.endpoint, { node: { id: node }, resource_names_subscribe: ['web', 'api'] }));
    expect(io.sent).toHaveLength(1);
    return io.sent[0];
  });
  expect(sent[1]?.equals(sent[0] ?? Buffer.alloc(0))).toBe(true);
  // 60 bytes each under a limit of 100: refused at the second name, with the total at that name.
  const names = ['x', 'y', 'z'].map((p) => p.repeat(60));
  const { stream, io } = open(withDefaults({ maxSubscriptionNameBytes: 100 }), 'delta');
  (stream as DeltaStream).onRequest(deltaReq(TYPE.endpoint, { node: { id: 'three' }, resource_names_subscribe: names }));
  expect(io.failure).toMatchObject({ code: 8, message: expect.stringContaining('would total 120 bytes') });
});
