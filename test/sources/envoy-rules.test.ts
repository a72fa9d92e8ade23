import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { ConfigError, parseConfig } from '../../src/sources/config-file.js';
import {
  cookieNameProblem,
  domainClashes,
  domainProblem,
  headerNameProblem,
  isPrime,
  listenerAddressProblem,
  maglevTableSizeProblem,
} from '../../src/sources/envoy-rules.js';

/** The rules Envoy applies beyond its schemas (src/sources/envoy-rules.ts), one by one. */

describe('envoy-rules', () => {
  it('Maglev tables are prime, and the message offers the primes around', () => {
    expect([2, 3, 65_537, 5_000_011].every(isPrime)).toBe(true);
    expect([0, 1, 4, 65_536, 5_000_009].some(isPrime)).toBe(false);
    expect(maglevTableSizeProblem(65_537)).toBeUndefined();
    expect(maglevTableSizeProblem(65_536)).toMatch(/prime.*65521 or 65537/);
  });

  it('header names are RFC 7230 tokens (or pseudo-headers), any case; cookie names are tokens', () => {
    for (const ok of ['x-user', 'X-User-Id', ':authority', "a!#$%&'*+-.^_`|~9"]) expect(headerNameProblem(ok), ok).toBeUndefined();
    for (const bad of ['x-user\r\nx-evil: 1', 'a b', 'a:b', '', ':', 'é', 'a\u0000']) expect(headerNameProblem(bad), bad).toMatch(/RFC 7230/);
    expect(headerNameProblem('a\r\nb')).toContain('\\r\\n');
    expect(cookieNameProblem('sid')).toBeUndefined();
    for (const bad of ['a;b', 'a=b', 'a b', 'a\nb']) expect(cookieNameProblem(bad), bad).toMatch(/cookie name/);
  });

  it("domains: '*' alone, or one wildcard first or last; no spaces or control characters", () => {
    for (const ok of ['*', '*.example.com', '*-bar.example', 'api.*', 'Example.com:8080', '[::1]:80']) expect(domainProblem(ok), ok).toBeUndefined();
    for (const bad of ['a.*.com', '**', '*a*', 'a*b']) expect(domainProblem(bad), bad).toMatch(/wildcard/);
    for (const bad of ['a.example\r\n', 'a b', 'a\tb']) expect(domainProblem(bad), bad).toMatch(/control character|space/);
  });

  it('domains of one listener clash when they differ only in case, once per spelling', () => {
    const at = (i: number) => `/r/${i}`;
    expect(domainClashes(['A.example', 'b', 'a.example', 'A.example', 'a.EXAMPLE'], at).map((p) => p.path)).toEqual(['/r/2', '/r/4']);
    expect(domainClashes(['*', '*', 'x'], at)).toEqual([]);
    // Envoy folds ASCII only: the Kelvin sign (U+212A) and "k", "İ" and "i̇", are different domains to it.
    expect(domainClashes(['\u212a.example', 'k.example', '\u0130.example', 'i\u0307.example'], at)).toEqual([]);
    expect(domainClashes(['\u212aA.example', '\u212aa.example'], at).map((p) => p.path)).toEqual(['/r/1']);
  });

  it('listener addresses: IP literals a listener can bind', () => {
    for (const ok of ['0.0.0.0', '127.0.0.1', '::', '::1', '2001:db8::1', '10.1.2.3']) expect(listenerAddressProblem(ok), ok).toBeUndefined();
    const cases: [string, RegExp][] = [
      ['::ffff:127.0.0.1', /IPv4-mapped/],
      ['0:0:0:0:0:FFFF:7f00:1', /IPv4-mapped/],
      ['::127.0.0.1', /IPv4-mapped/],
      ['fe80::1%eth0', /zone id/],
      ['ff02::1', /multicast/],
      ['239.1.2.3', /multicast/],
      ['255.255.255.255', /broadcast/],
      ['localhost', /not an IP address/],
      ['1.2.3', /not an IP address/],
    ];
    for (const [address, says] of cases) expect(listenerAddressProblem(address), address).toMatch(says);
  });

  it('the config file reports each with its path (the issue-10 cases)', () => {
    const doc = {
      clusters: [
        { name: 'm', lbPolicy: 'MAGLEV', maglev: { tableSize: 4 } },
        { name: 'r', lbPolicy: 'RING_HASH', ringHash: { minimumRingSize: 2048, maximumRingSize: 1024 } },
      ],
      listeners: [
        {
          name: 'l',
          address: '::ffff:127.0.0.1',
          port: 10_000,
          routes: [
            { domain: 'A.example', cluster: 'r', hashPolicy: { header: 'x-user\r\nx-evil' } },
            { domain: 'a.example', cluster: 'r' },
            { domain: 'b.example\r\n', cluster: 'r' },
          ],
        },
      ],
    };
    let problems: string[] = [];
    try {
      parseConfig(stringify(doc), 'f.yaml');
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      problems = err.problems.map((p) => p.path);
    }
    expect(problems.sort()).toEqual(
      [
        '/clusters/0/maglev/tableSize',
        '/clusters/1/ringHash/minimumRingSize',
        '/listeners/0/address',
        '/listeners/0/routes/0/hashPolicy/header',
        '/listeners/0/routes/1/domain',
        '/listeners/0/routes/2/domain',
      ].sort(),
    );
  });
});
