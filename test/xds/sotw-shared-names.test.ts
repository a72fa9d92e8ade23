/**
 * SotW requests whose names arrive encoded alike (every proxy's first EDS request in a reconnect
 * storm) share one decode, one limit check and one subscription entry. What each stream is sent,
 * and what each server's limits refuse, must not depend on which stream came first.
 */
import { pino } from 'pino';
import { expect, test } from 'vitest';
import { XdsCache } from '../../src/xds/cache.js';
import { envoyType, TYPE } from '../../src/xds/envoy-api.js';
import { withDefaults, type XdsLimits } from '../../src/xds/limits.js';
import { ProxyRegistry } from '../../src/xds/proxy-status.js';
import { internNames, namesOf } from '../../src/xds/request-names.js';
import { SotwStream } from '../../src/xds/sotw-stream.js';
import { decodeDiscoveryRequest, type DiscoveryRequest } from '../../src/xds/wire.js';
import { decodeDiscoveryResponse, namesOf as responseNames } from '../support/xds-client.js';
import { base, FakeIo, groups } from './stream-fixture.js';

const requestType = envoyType('envoy.service.discovery.v3.DiscoveryRequest');
const encoded = (m: Record<string, unknown>): DiscoveryRequest =>
  decodeDiscoveryRequest(Buffer.from(requestType.encode(requestType.fromObject(m)).finish()));

function open(limits?: XdsLimits): { stream: SotwStream; io: FakeIo } {
  const cache = new XdsCache();
  cache.update(groups(base()));
  const io = new FakeIo();
  const deps = { cache, registry: new ProxyRegistry(() => 0), log: pino({ level: 'silent' }), maxResourceNames: 100, controlPlaneId: 't', ...(limits ? { limits } : {}) };
  return { stream: new SotwStream(deps, io, 'ads'), io };
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
  lenient.stream.onRequest(request('a'));
  expect(lenient.io.failure).toBeUndefined();
  const strict = open(withDefaults({ maxNameBytes: 32 }));
  strict.stream.onRequest(request('b'));
  expect(strict.io.failure).toMatchObject({ code: 3, message: expect.stringContaining('40 bytes') });
});

test('streams sending the same names encoded alike are answered alike, and ACKs are not answered', () => {
  const sent = ['one', 'two'].map((node) => {
    const { stream, io } = open();
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
