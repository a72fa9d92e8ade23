/**
 * A proxy's identity from its client certificate, and the bindings that say what an identity
 * may claim. Pure: no I/O, no grpc-js.
 *
 * The identity is the certificate's SPIFFE URI SAN (`spiffe://trust-domain/path`) when it has
 * one, else its first DNS SAN: what SPIFFE/Istio workload certificates and most private CAs put
 * there. The subject CN is not used (RFC 6125 deprecates it for identity).
 */

export interface PeerIdentity {
  /** The SPIFFE ID if any, else the first DNS name. */
  readonly id: string;
  /** Every URI and DNS SAN, for matching. */
  readonly names: readonly string[];
}

/** `server.xds.identities[i]`: an identity pattern and what a proxy holding it may claim. */
export interface IdentityBinding {
  /** Glob over the certificate's URI and DNS SANs (see `globMatcher`). */
  readonly match: string;
  /** Glob the stream's node.id must match (default `**`: any). */
  readonly nodeId?: string;
  /** Glob the stream's node.cluster (its node group) must match (default `**`: any). */
  readonly nodeCluster?: string;
  /** May send metric reports and LRS load reports (default false). */
  readonly report?: boolean;
}

/**
 * Parses Node's `subjectaltname` string (`URI:spiffe://a/b, DNS:x.example`). Node quotes an
 * entry whose value holds a comma, quote or other special character as a JSON string
 * (`URI:"spiffe://a/b,c"`), which is decoded here; IP and email entries are ignored.
 */
export function parseSubjectAltNames(san: string | undefined): { uris: string[]; dns: string[] } {
  const out = { uris: [] as string[], dns: [] as string[] };
  let rest = san ?? '';
  while (rest.length > 0) {
    const m = /^([A-Za-z ]+):/.exec(rest);
    if (!m?.[1]) break;
    const kind = m[1];
    const { value, after } = readSanValue(rest.slice(m[0].length));
    if (kind === 'URI') out.uris.push(value);
    if (kind === 'DNS') out.dns.push(value);
    rest = after.replace(/^, /, '');
  }
  return out;
}

function readSanValue(text: string): { value: string; after: string } {
  if (text.startsWith('"')) {
    // A JSON string literal: find its closing quote (skipping escaped ones) and decode it.
    const end = /^"(?:[^"\\]|\\.)*"/.exec(text);
    if (end) return { value: JSON.parse(end[0]) as string, after: text.slice(end[0].length) };
  }
  const comma = text.indexOf(', ');
  return comma < 0 ? { value: text, after: '' } : { value: text.slice(0, comma), after: text.slice(comma) };
}

/** The identity a certificate's SANs give, or undefined when it has neither URI nor DNS SANs. */
export function identityFromSans(san: string | undefined): PeerIdentity | undefined {
  const { uris, dns } = parseSubjectAltNames(san);
  const id = uris.find((u) => u.startsWith('spiffe://')) ?? dns[0] ?? uris[0];
  return id === undefined ? undefined : { id, names: [...uris, ...dns] };
}

/**
 * A glob as a predicate: `*` matches any run of characters except `/` (one SPIFFE path
 * segment), `**` any run at all; every other character matches itself.
 */
export function globMatcher(glob: string): (value: string) => boolean {
  const body = glob
    .split('**')
    .map((part) => part.split('*').map(escapeRegExp).join('[^/]*'))
    .join('.*');
  const re = new RegExp(`^${body}$`, 's');
  return (value) => re.test(value);
}

const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** A binding with its globs compiled. */
export interface CompiledBinding {
  readonly binding: IdentityBinding;
  matchesIdentity(identity: PeerIdentity): boolean;
  /** Undefined when the node may be claimed, else which field does not match. */
  refusesNode(node: { readonly id: string; readonly cluster: string }): string | undefined;
}

export function compileBinding(binding: IdentityBinding): CompiledBinding {
  const identity = globMatcher(binding.match);
  const nodeId = globMatcher(binding.nodeId ?? '**');
  const nodeCluster = globMatcher(binding.nodeCluster ?? '**');
  return {
    binding,
    matchesIdentity: (peer) => peer.names.some(identity),
    refusesNode: (node) => {
      if (!nodeId(node.id)) return `node.id "${node.id}" does not match "${binding.nodeId ?? '**'}"`;
      if (!nodeCluster(node.cluster)) return `node.cluster "${node.cluster}" does not match "${binding.nodeCluster ?? '**'}"`;
      return undefined;
    },
  };
}

/** The first binding (in configured order) whose pattern matches the identity. */
export function bindingFor(bindings: readonly CompiledBinding[], identity: PeerIdentity): CompiledBinding | undefined {
  return bindings.find((b) => b.matchesIdentity(identity));
}
