import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/sources/config-file.js';

const parse = (xds: string): ReturnType<typeof parseConfig> => parseConfig(`server:\n  xds:\n${xds}\n`, 'fulcrum.yaml');

describe('server.xds.tls and server.xds.identities in the config file', () => {
  it('are read as written', () => {
    const config = parse(
      [
        '    tls: { certFile: /tls/cert.pem, keyFile: /tls/key.pem, clientCaFile: /tls/ca.pem, requireClientCert: false, reloadIntervalMs: 5000 }',
        '    identities:',
        '      - { match: "spiffe://example.org/ns/*/sa/web", nodeId: "web-*", nodeCluster: web, report: true }',
      ].join('\n'),
    );
    expect(config.server.xds.tls).toEqual({ certFile: '/tls/cert.pem', keyFile: '/tls/key.pem', clientCaFile: '/tls/ca.pem', requireClientCert: false, reloadIntervalMs: 5000 });
    expect(config.server.xds.identities).toEqual([{ match: 'spiffe://example.org/ns/*/sa/web', nodeId: 'web-*', nodeCluster: 'web', report: true }]);
  });

  it('read the session-ticket settings, and refuse a lifetime outside 1 s to 7 days', () => {
    const config = parse('    tls: { certFile: c, keyFile: k, sessionTicketKeyFile: /tls/tickets.key, sessionLifetimeSeconds: 3600 }');
    expect(config.server.xds.tls).toEqual({ certFile: 'c', keyFile: 'k', sessionTicketKeyFile: '/tls/tickets.key', sessionLifetimeSeconds: 3600 });
    expect(() => parse('    tls: { certFile: c, keyFile: k, sessionLifetimeSeconds: 0 }')).toThrow(/\/server\/xds\/tls\/sessionLifetimeSeconds/);
    expect(() => parse('    tls: { certFile: c, keyFile: k, sessionLifetimeSeconds: 604801 }')).toThrow(/\/server\/xds\/tls\/sessionLifetimeSeconds/);
    expect(() => parse('    tls: { certFile: c, keyFile: k, sessionTicketKeyFile: "" }')).toThrow(/\/server\/xds\/tls\/sessionTicketKeyFile/);
  });

  it('are absent by default (plaintext, no identities)', () => {
    const config = parse('    port: 18000');
    expect(config.server.xds.tls).toBeUndefined();
    expect(config.server.xds.identities).toBeUndefined();
  });

  it('refuse identities or requireClientCert without a client CA, and unknown keys, naming the path', () => {
    expect(() => parse('    tls: { certFile: c, keyFile: k, requireClientCert: true }')).toThrow(/\/server\/xds\/tls\/requireClientCert: needs server\.xds\.tls\.clientCaFile/);
    expect(() => parse('    tls: { certFile: c, keyFile: k }\n    identities: [{ match: "**" }]')).toThrow(/\/server\/xds\/identities: needs server\.xds\.tls\.clientCaFile/);
    expect(() => parse('    tls: { certFile: c, keyFile: k, clientCa: ca }')).toThrow(/\/server\/xds\/tls/);
    expect(() => parse('    tls: { certFile: c }')).toThrow(/keyFile/);
    expect(() => parse('    identities: [{ match: "" }]')).toThrow(/\/server\/xds\/identities\/0\/match/);
  });
});
