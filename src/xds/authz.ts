import { BlockList, isIP } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { bindingFor, compileBinding, identityFromSans, type CompiledBinding, type IdentityBinding, type PeerIdentity } from './peer-identity.js';
import { StreamError } from './stream-common.js';

/**
 * Who may do what on the xDS gRPC port. Three surfaces, told apart by the method path:
 *  - `xds`: the discovery services. A proxy with a verified client certificate is admitted when
 *    its identity matches a `server.xds.identities` entry (or none is configured), and its first
 *    request's node.id / node.cluster must match that entry (`admitNode`). Without a certificate,
 *    a bearer token of role `proxy` or `admin` is needed once proxy tokens are configured.
 *  - `report`: ReportService and LRS, which steer weights. A certificate whose entry has
 *    `report: true`, or a `report` / `admin` token. Open only while fulcrum has no credentials
 *    configured at all (no token of any role, no client CA), like the admin API without tokens.
 *  - `status`: CSDS, which shows every proxy's config. An `admin` / `read` token once the admin
 *    API has tokens (of any role but proxy) or the port verifies client certificates.
 * A refused call ends before its handler sees a byte: UNAUTHENTICATED without (valid)
 * credentials, PERMISSION_DENIED with credentials that do not allow it.
 */

export type TokenRole = 'admin' | 'read' | 'report' | 'proxy';
export type Surface = 'xds' | 'report' | 'status';
export type RefusalReason = 'no_credentials' | 'unknown_token' | 'wrong_role' | 'identity_unbound' | 'identity_not_reporter' | 'node_mismatch';

export interface XdsAuthzOptions {
  /** The role of a presented bearer token, or undefined (constant-time; see admin/auth.ts). */
  readonly tokenRole: (token: string) => TokenRole | undefined;
  /** Which token roles have at least one token configured. */
  readonly configuredRoles: ReadonlySet<TokenRole>;
  /** Whether the port verifies client certificates (a client CA is configured). */
  readonly mutualTls: boolean;
  readonly identities?: readonly IdentityBinding[];
  /** A refusal, for the metric and the log. */
  readonly onRefused?: (surface: Surface, reason: RefusalReason, detail: { peer: string; message: string }) => void;
}

/** What a call presented. */
interface Presented {
  readonly identity: PeerIdentity | undefined;
  readonly token: string | undefined;
}

export interface CallRefusal {
  readonly code: grpc.status;
  readonly reason: RefusalReason;
  readonly message: string;
}

/**
 * The slice of grpc-js's AuthContext used here (the type is not exported by grpc-js): of the
 * certificate, only its subject alternative names, which fulcrum's own calls read from the
 * X509Certificate (h2-discovery-call.ts) rather than build every field of it.
 */
export interface CallAuthContext {
  readonly sslPeerCertificate?: { readonly subjectaltname?: string | undefined };
}

const SURFACES: readonly (readonly [string, Surface])[] = [
  ['/envoy.service.discovery.v3.', 'xds'],
  ['/envoy.service.cluster.v3.', 'xds'],
  ['/envoy.service.endpoint.v3.', 'xds'],
  ['/envoy.service.listener.v3.', 'xds'],
  ['/envoy.service.route.v3.', 'xds'],
  ['/fulcrum.reports.v1.ReportService/', 'report'],
  ['/envoy.service.load_stats.v3.LoadReportingService/', 'report'],
  ['/envoy.service.status.v3.ClientStatusDiscoveryService/', 'status'],
];

export function surfaceOf(path: string): Surface | undefined {
  return SURFACES.find(([prefix]) => path.startsWith(prefix))?.[1];
}

/** The identity of a verified client certificate (grpc-js reports only verified ones). */
export function peerIdentity(auth: CallAuthContext): PeerIdentity | undefined {
  return auth.sslPeerCertificate ? identityFromSans(auth.sslPeerCertificate.subjectaltname) : undefined;
}

/** The token of an `authorization: Bearer <token>` value (from grpc-js's metadata or an HTTP/2 header). */
function bearer(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  return /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(value)?.[1];
}

const ROLES_FOR: Record<Surface, readonly TokenRole[]> = { xds: ['proxy', 'admin'], report: ['report', 'admin'], status: ['admin', 'read'] };

export class XdsAuthz {
  private readonly bindings: readonly CompiledBinding[];

  constructor(private readonly options: XdsAuthzOptions) {
    this.bindings = (options.identities ?? []).map(compileBinding);
  }

  /**
   * No call can be refused: no token of any role and no client certificates, so every surface is
   * open. The server then leaves the interceptor out (one layer less on every call and message).
   */
  get refusesNothing(): boolean {
    return this.options.configuredRoles.size === 0 && !this.options.mutualTls;
  }

  /** Whether `admitNode` can refuse anything: only certificate identities bound to nodes can. */
  get checksNodes(): boolean {
    return this.bindings.length > 0;
  }

  /** The grpc-js server interceptor that decides each call from its metadata and certificate. */
  readonly interceptor: grpc.ServerInterceptor = (method, call) =>
    new grpc.ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, pass) => {
            const refusal = this.refuseCall(method.path, call.getAuthContext(), metadata.get('authorization')[0], call.getPeer());
            if (refusal) call.sendStatus({ code: refusal.code, details: refusal.message });
            else pass(metadata);
          },
        }),
    });

  /**
   * Why a call on `path` may not proceed, from its certificate and its `authorization` value
   * (reported to `onRefused`); undefined when it may. The interceptor's decision, also for the
   * discovery streams fulcrum serves without grpc-js's call (discovery-router.ts).
   */
  refuseCall(path: string, auth: CallAuthContext, authorization: unknown, peer: string): CallRefusal | undefined {
    const surface = surfaceOf(path);
    const refusal = surface && this.decide(surface, { identity: peerIdentity(auth), token: bearer(authorization) });
    if (!surface || !refusal) return undefined;
    this.options.onRefused?.(surface, refusal.reason, { peer, message: refusal.message });
    return refusal;
  }

  /**
   * A stream's first node against its certificate's binding; throws PERMISSION_DENIED naming the
   * field that does not match. Streams without a certificate were vetted by the interceptor.
   */
  admitNode(auth: CallAuthContext, node: { readonly id: string; readonly cluster: string }, peer: string): void {
    const identity = peerIdentity(auth);
    if (!identity || this.bindings.length === 0) return;
    const binding = bindingFor(this.bindings, identity);
    const why = binding ? binding.refusesNode(node) : 'it matches no server.xds.identities entry';
    if (why === undefined) return;
    const message = `client certificate identity "${identity.id}" may not claim this node: ${why}`;
    this.options.onRefused?.('xds', 'node_mismatch', { peer, message });
    throw new StreamError(grpc.status.PERMISSION_DENIED, message);
  }

  /**
   * Undefined when the call may proceed. Credentials that allow the call win; on a surface that
   * is open, calls without (or with unknown) credentials pass too, except a certificate that
   * matches no configured identity, which is refused wherever identities are configured.
   */
  decide(surface: Surface, presented: Presented): CallRefusal | undefined {
    const byIdentity = presented.identity ? this.byIdentity(surface, presented.identity) : undefined;
    if (presented.identity && !byIdentity) return undefined;
    const byToken = presented.token !== undefined ? this.byToken(surface, presented.token) : undefined;
    if (presented.token !== undefined && !byToken) return undefined;
    if (byIdentity?.reason === 'identity_unbound') return byIdentity;
    if (this.open(surface)) return undefined;
    return byToken ?? byIdentity ?? { code: grpc.status.UNAUTHENTICATED, reason: 'no_credentials', message: this.missing(surface) };
  }

  private byToken(surface: Surface, token: string): CallRefusal | undefined {
    const role = this.options.tokenRole(token);
    if (role === undefined) return { code: grpc.status.UNAUTHENTICATED, reason: 'unknown_token', message: 'unknown bearer token' };
    if (ROLES_FOR[surface].includes(role)) return undefined;
    const allowed = ROLES_FOR[surface].join(' or ');
    return { code: grpc.status.PERMISSION_DENIED, reason: 'wrong_role', message: `a ${role} token cannot call ${surfaceName(surface)}; it needs a ${allowed} token` };
  }

  private byIdentity(surface: Surface, identity: PeerIdentity): CallRefusal | undefined {
    const binding = bindingFor(this.bindings, identity);
    if (surface === 'xds') {
      if (this.bindings.length === 0 || binding) return undefined;
      return { code: grpc.status.PERMISSION_DENIED, reason: 'identity_unbound', message: `client certificate identity "${identity.id}" matches no server.xds.identities entry` };
    }
    if (surface === 'report') {
      if (binding?.binding.report === true) return undefined;
      return { code: grpc.status.PERMISSION_DENIED, reason: 'identity_not_reporter', message: `client certificate identity "${identity.id}" may not send reports (server.xds.identities[].report); present a report token` };
    }
    return { code: grpc.status.UNAUTHENTICATED, reason: 'no_credentials', message: this.missing(surface) };
  }

  /**
   * Whether a call with no operator credentials is let through. CSDS shows every proxy's config,
   * what the admin API's /v1/config_dump does: it is open only while that API is (no admin, read
   * or report token) and the port does not verify client certificates. Where it does, any proxy
   * holding one read every node group's config here, identities notwithstanding.
   */
  private open(surface: Surface): boolean {
    const roles = this.options.configuredRoles;
    if (surface === 'xds') return !roles.has('proxy');
    if (surface === 'status') return !roles.has('admin') && !roles.has('read') && !roles.has('report') && !this.options.mutualTls;
    return roles.size === 0 && !this.options.mutualTls;
  }

  private missing(surface: Surface): string {
    const cert = surface === 'xds' || surface === 'report' ? ' or a client certificate' : '';
    return `${surfaceName(surface)} needs credentials: a bearer token (authorization: Bearer <token>, role ${ROLES_FOR[surface].join(' or ')})${cert}`;
  }
}

/**
 * Where `server.xds.identities` bind certificates to node groups but a client may come without a
 * certificate (requireClientCert: false) and no proxy token is asked of it, such a client is
 * served whatever node it claims: what a mixed fleet (proxyless clients without certificates)
 * needs, but not what the identities alone suggest. The warning to log at start, or undefined.
 */
export function unboundClientsWarning(s: { readonly identities: number; readonly certificateOptional: boolean; readonly proxyTokens: boolean }): string | undefined {
  if (s.identities === 0 || !s.certificateOptional || s.proxyTokens) return undefined;
  return (
    'server.xds.identities bind client certificates to node groups, but with server.xds.tls.requireClientCert: false and no proxy token ' +
    '(FULCRUM_PROXY_TOKEN, tokenFiles.proxy) a client without a certificate is served any node group it claims'
  );
}

/**
 * Proxy tokens accepted on an xDS port without TLS cross the network in clear text: anyone on the
 * path reads one and is then served any node group's config. Not refused (a sidecar's own node
 * or a TLS-terminating mesh may be the path), but said at start, unless the port listens on
 * loopback only. The warning to log, or undefined.
 */
export function clearTextTokensWarning(s: { readonly tls: boolean; readonly proxyTokens: boolean; readonly address: string }): string | undefined {
  if (s.tls || !s.proxyTokens || isLoopback(s.address)) return undefined;
  return (
    `proxy tokens (FULCRUM_PROXY_TOKEN, tokenFiles.proxy) are accepted on the xDS port at ${s.address} without TLS, so they cross the network in clear text: ` +
    'set server.xds.tls (certFile, keyFile), or listen on loopback only (server.xds.address)'
  );
}

/** Whether a listen address reaches this host only: 127.0.0.0/8, ::1 (also IPv4-mapped), localhost. */
function isLoopback(address: string): boolean {
  if (address.toLowerCase() === 'localhost') return true;
  const family = isIP(address);
  return family !== 0 && LOOPBACK.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

function surfaceName(surface: Surface): string {
  return surface === 'xds' ? 'xDS discovery' : surface === 'report' ? 'reports and load reports' : 'client status (CSDS)';
}
