import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { clearTextTokensWarning, surfaceOf, XdsAuthz, type RefusalReason, type TokenRole } from '../../src/xds/authz.js';
import { StreamError } from '../../src/xds/stream-common.js';

const TOKENS: Record<string, TokenRole> = { adm: 'admin', rd: 'read', rep: 'report', prx: 'proxy' };

function authz(roles: TokenRole[], opts: { mutualTls?: boolean; identities?: ConstructorParameters<typeof XdsAuthz>[0]['identities'] } = {}): XdsAuthz {
  const configured = new Set(roles);
  return new XdsAuthz({
    tokenRole: (t) => (TOKENS[t] && configured.has(TOKENS[t]) ? TOKENS[t] : undefined),
    configuredRoles: configured,
    mutualTls: opts.mutualTls ?? false,
    ...(opts.identities ? { identities: opts.identities } : {}),
  });
}

const web = { id: 'spiffe://t/ns/a/sa/web', names: ['spiffe://t/ns/a/sa/web'] };
const stranger = { id: 'spiffe://t/ns/a/sa/other', names: ['spiffe://t/ns/a/sa/other'] };
const outcome = (z: XdsAuthz, surface: Parameters<XdsAuthz['decide']>[0], p: Parameters<XdsAuthz['decide']>[1]): RefusalReason | 'ok' =>
  z.decide(surface, p)?.reason ?? 'ok';

describe('xDS port authorization', () => {
  it('tells the surfaces apart by method path', () => {
    expect(surfaceOf('/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources')).toBe('xds');
    expect(surfaceOf('/envoy.service.cluster.v3.ClusterDiscoveryService/FetchClusters')).toBe('xds');
    expect(surfaceOf('/fulcrum.reports.v1.ReportService/Report')).toBe('report');
    expect(surfaceOf('/envoy.service.load_stats.v3.LoadReportingService/StreamLoadStats')).toBe('report');
    expect(surfaceOf('/envoy.service.status.v3.ClientStatusDiscoveryService/FetchClientStatus')).toBe('status');
    expect(surfaceOf('/grpc.health.v1.Health/Check')).toBeUndefined();
  });

  it('with no credentials configured everything is open, whatever a client presents', () => {
    const z = authz([]);
    for (const surface of ['xds', 'report', 'status'] as const) {
      expect(outcome(z, surface, { identity: undefined, token: undefined })).toBe('ok');
      expect(outcome(z, surface, { identity: undefined, token: 'some-jwt' })).toBe('ok');
    }
    // So the server leaves the interceptor out; any credential configured puts it back.
    expect(z.refusesNothing).toBe(true);
    for (const role of ['admin', 'read', 'report', 'proxy'] as const) expect(authz([role]).refusesNothing).toBe(false);
    expect(authz([], { mutualTls: true }).refusesNothing).toBe(false);
  });

  it('proxy tokens close xDS: proxy and admin tokens pass, others are refused with the right code', () => {
    const z = authz(['proxy', 'admin', 'report', 'read']);
    expect(outcome(z, 'xds', { identity: undefined, token: 'prx' })).toBe('ok');
    expect(outcome(z, 'xds', { identity: undefined, token: 'adm' })).toBe('ok');
    expect(z.decide('xds', { identity: undefined, token: undefined })).toMatchObject({ code: grpc.status.UNAUTHENTICATED, reason: 'no_credentials' });
    expect(z.decide('xds', { identity: undefined, token: 'nope' })).toMatchObject({ code: grpc.status.UNAUTHENTICATED, reason: 'unknown_token' });
    expect(z.decide('xds', { identity: undefined, token: 'rep' })).toMatchObject({ code: grpc.status.PERMISSION_DENIED, reason: 'wrong_role' });
  });

  it('admin tokens alone keep xDS open (proxies keep working) but close reports and CSDS', () => {
    const z = authz(['admin']);
    expect(outcome(z, 'xds', { identity: undefined, token: undefined })).toBe('ok');
    expect(outcome(z, 'report', { identity: undefined, token: undefined })).toBe('no_credentials');
    expect(outcome(z, 'report', { identity: undefined, token: 'adm' })).toBe('ok');
    expect(outcome(z, 'status', { identity: undefined, token: undefined })).toBe('no_credentials');
    expect(outcome(z, 'status', { identity: undefined, token: 'adm' })).toBe('ok');
    // Report tokens alone lock the admin API, so they close CSDS too (to everyone: no token may read).
    expect(outcome(authz(['report']), 'status', { identity: undefined, token: undefined })).toBe('no_credentials');
    expect(outcome(authz(['proxy']), 'status', { identity: undefined, token: undefined })).toBe('ok');
    // A client certificate is a proxy's credential, not an operator's: with mTLS, CSDS needs a token.
    expect(outcome(authz([], { mutualTls: true }), 'status', { identity: web, token: undefined })).toBe('no_credentials');
    expect(outcome(authz([], { mutualTls: true }), 'status', { identity: undefined, token: undefined })).toBe('no_credentials');
  });

  it('with mTLS, identities decide: unbound ones are refused, reports need report: true or a report token', () => {
    const z = authz([], { mutualTls: true, identities: [{ match: 'spiffe://t/ns/*/sa/web', nodeId: 'web-*', report: true }, { match: 'spiffe://t/ns/*/sa/edge' }] });
    expect(outcome(z, 'xds', { identity: web, token: undefined })).toBe('ok');
    expect(z.decide('xds', { identity: stranger, token: undefined })).toMatchObject({ code: grpc.status.PERMISSION_DENIED, reason: 'identity_unbound' });
    expect(outcome(z, 'report', { identity: web, token: undefined })).toBe('ok');
    const edge = { id: 'spiffe://t/ns/a/sa/edge', names: ['spiffe://t/ns/a/sa/edge'] };
    expect(z.decide('report', { identity: edge, token: undefined })).toMatchObject({ code: grpc.status.PERMISSION_DENIED, reason: 'identity_not_reporter' });
    // mTLS closes reports even without tokens: a client without a certificate (optional mTLS) cannot report.
    expect(outcome(z, 'report', { identity: undefined, token: undefined })).toBe('no_credentials');
  });

  it("admitNode holds a certificate to its binding's node id and node cluster", () => {
    const z = authz([], { mutualTls: true, identities: [{ match: 'spiffe://t/ns/*/sa/web', nodeId: 'web-*', nodeCluster: 'web' }] });
    const cert = { sslPeerCertificate: { subjectaltname: 'URI:spiffe://t/ns/a/sa/web' } as never };
    expect(() => z.admitNode(cert, { id: 'web-1', cluster: 'web' }, 'peer')).not.toThrow();
    const refuse = (node: { id: string; cluster: string }): StreamError | undefined => {
      try {
        z.admitNode(cert, node, 'peer');
        return undefined;
      } catch (err) {
        return err as StreamError;
      }
    };
    expect(refuse({ id: 'edge-1', cluster: 'web' })).toMatchObject({ code: grpc.status.PERMISSION_DENIED, message: expect.stringMatching(/node\.id "edge-1"/) as unknown });
    expect(refuse({ id: 'web-1', cluster: 'edge' })?.message).toMatch(/node\.cluster "edge" does not match "web"/);
    // No certificate: nothing to hold it to (the interceptor vetted the call).
    expect(() => z.admitNode({}, { id: 'anything', cluster: 'x' }, 'peer')).not.toThrow();
  });
});

describe('clearTextTokensWarning', () => {
  it('speaks only of proxy tokens on a port without TLS that is reachable from other hosts', () => {
    const on = (address: string, tls = false, proxyTokens = true) => clearTextTokensWarning({ tls, proxyTokens, address });
    for (const address of ['0.0.0.0', '::', '10.0.0.7', 'fulcrum.example', '::ffff:10.0.0.7']) expect(on(address)).toMatch(/set server\.xds\.tls/);
    for (const address of ['127.0.0.1', '127.1.2.3', '::1', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1', 'localhost', 'LOCALHOST']) expect(on(address)).toBeUndefined();
    expect(on('0.0.0.0', true)).toBeUndefined();
    expect(on('0.0.0.0', false, false)).toBeUndefined();
  });
});
