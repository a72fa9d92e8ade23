import { describe, expect, it } from 'vitest';
import { bindingFor, compileBinding, globMatcher, identityFromSans, parseSubjectAltNames } from '../../src/xds/peer-identity.js';

describe('peer identity from a client certificate', () => {
  it("parses Node's subjectaltname string, including JSON-quoted entries", () => {
    expect(parseSubjectAltNames('URI:spiffe://a.test/ns/x/sa/web, DNS:web.x.svc, IP Address:10.0.0.1, DNS:b.example')).toEqual({
      uris: ['spiffe://a.test/ns/x/sa/web'],
      dns: ['web.x.svc', 'b.example'],
    });
    expect(parseSubjectAltNames('URI:"spiffe://a.test/odd, name", DNS:c.example')).toEqual({ uris: ['spiffe://a.test/odd, name'], dns: ['c.example'] });
    expect(parseSubjectAltNames(undefined)).toEqual({ uris: [], dns: [] });
  });

  it('prefers the SPIFFE URI, else the first DNS name; no SAN, no identity', () => {
    expect(identityFromSans('DNS:web.example, URI:spiffe://a.test/sa/web')?.id).toBe('spiffe://a.test/sa/web');
    expect(identityFromSans('DNS:web.example, DNS:other')?.id).toBe('web.example');
    expect(identityFromSans('IP Address:127.0.0.1')).toBeUndefined();
  });

  it('globs: * stays within a path segment, ** crosses them, the rest is literal', () => {
    const ns = globMatcher('spiffe://a.test/ns/*/sa/web');
    expect(ns('spiffe://a.test/ns/shop/sa/web')).toBe(true);
    expect(ns('spiffe://a.test/ns/shop/extra/sa/web')).toBe(false);
    expect(ns('spiffe://a.test/ns/shop/sa/webx')).toBe(false);
    expect(globMatcher('spiffe://a.test/**')('spiffe://a.test/ns/x/sa/y')).toBe(true);
    expect(globMatcher('web-*')('web-1')).toBe(true);
    expect(globMatcher('web-*')('edge-1')).toBe(false);
    expect(globMatcher('a.b')('axb')).toBe(false);
  });

  it('a binding names the field a node claim breaks; the first matching binding wins', () => {
    const web = compileBinding({ match: 'spiffe://a.test/ns/*/sa/web', nodeId: 'web-*', nodeCluster: 'web' });
    const any = compileBinding({ match: '**' });
    const identity = { id: 'spiffe://a.test/ns/shop/sa/web', names: ['spiffe://a.test/ns/shop/sa/web'] };
    expect(bindingFor([web, any], identity)).toBe(web);
    expect(web.refusesNode({ id: 'web-1', cluster: 'web' })).toBeUndefined();
    expect(web.refusesNode({ id: 'edge-1', cluster: 'web' })).toMatch(/node\.id "edge-1" does not match "web-\*"/);
    expect(web.refusesNode({ id: 'web-1', cluster: 'edge' })).toMatch(/node\.cluster "edge" does not match "web"/);
    expect(any.refusesNode({ id: 'x', cluster: '' })).toBeUndefined();
    expect(bindingFor([web], { id: 'dns.example', names: ['dns.example'] })).toBeUndefined();
  });
});
