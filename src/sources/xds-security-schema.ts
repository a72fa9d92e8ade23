import { Type } from '@sinclair/typebox';

/**
 * `server.xds.tls` and `server.xds.identities`: TLS/mTLS on the xDS port and what each client
 * certificate identity may claim. The xDS room turns these into credentials (transport-security.ts)
 * and decisions (authz.ts); here is only what the file may say.
 */

const PemFile = Type.String({ minLength: 1, maxLength: 4096 });
/** `*` matches within one `/`-separated segment, `**` across them. */
const Glob = Type.String({ minLength: 1, maxLength: 1024 });

const XdsTlsSchema = Type.Object(
  {
    certFile: PemFile,
    keyFile: PemFile,
    clientCaFile: Type.Optional(PemFile),
    requireClientCert: Type.Optional(Type.Boolean()),
    reloadIntervalMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 3_600_000 })),
    sessionTicketKeyFile: Type.Optional(PemFile),
    // TLS 1.3 caps a ticket's lifetime at 7 days (RFC 8446 §4.6.1).
    sessionLifetimeSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 604_800 })),
  },
  { additionalProperties: false },
);

const IdentitySchema = Type.Object(
  {
    match: Glob,
    nodeId: Type.Optional(Glob),
    nodeCluster: Type.Optional(Glob),
    report: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

/** The keys this file adds to the config file's `server.xds` entry. */
export const xdsSecurityProperties = {
  tls: Type.Optional(XdsTlsSchema),
  identities: Type.Optional(Type.Array(IdentitySchema, { maxItems: 1000 })),
};

export interface XdsSecuritySettings {
  readonly tls?: {
    readonly certFile: string;
    readonly keyFile: string;
    readonly clientCaFile?: string;
    readonly requireClientCert?: boolean;
    readonly reloadIntervalMs?: number;
    readonly sessionTicketKeyFile?: string;
    readonly sessionLifetimeSeconds?: number;
  };
  readonly identities?: readonly { readonly match: string; readonly nodeId?: string; readonly nodeCluster?: string; readonly report?: boolean }[];
}

interface Problem {
  readonly path: string;
  readonly message: string;
}

/** Rules across keys: identities and requireClientCert only mean something with a client CA. */
export function checkXdsSecurity(x: XdsSecuritySettings | undefined): Problem[] {
  const problems: Problem[] = [];
  if (x?.tls?.requireClientCert !== undefined && x.tls.clientCaFile === undefined) {
    problems.push({ path: '/server/xds/tls/requireClientCert', message: 'needs server.xds.tls.clientCaFile (the CA client certificates are verified against)' });
  }
  if (x?.identities && x.identities.length > 0 && x.tls?.clientCaFile === undefined) {
    problems.push({ path: '/server/xds/identities', message: 'needs server.xds.tls.clientCaFile: identities come from verified client certificates' });
  }
  return problems;
}

/** The settings as the server takes them (absent keys stay absent). */
export function xdsSecuritySettings(x: XdsSecuritySettings | undefined): XdsSecuritySettings {
  return { ...(x?.tls ? { tls: x.tls } : {}), ...(x?.identities ? { identities: x.identities } : {}) };
}
