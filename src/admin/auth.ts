import { readFileSync } from 'node:fs';
import { createHash, timingSafeEqual } from 'node:crypto';
import { nameTokens } from './token-names.js';

/**
 * Bearer-token authorization of the admin API.
 *
 * Roles: `admin` tokens may do everything; `read` tokens only GET/HEAD; `report` tokens only
 * `POST /v1/reports` (so a metrics agent does not hold a token that can delete clusters).
 * Open without a token, always: `/healthz`, `/readyz`, `/metrics` (probes and scrapers), and the
 * API's description, `/openapi.json` and `/docs` (it is the same for every fulcrum and holds no
 * state; the Swagger UI loads it before the operator pastes a token into "Authorize"), and the
 * dashboard's page `/` and assets `/dashboard/*` (static; the page asks for a token for /v1).
 * When no token at all is configured, auth is off and everything is open (main.ts warns).
 *
 * Tokens are compared in constant time on their SHA-256 digests, so neither the content nor the
 * length of a configured token leaks through response timing; every configured token is checked,
 * whichever matches.
 *
 * Each token has a name (`<name>:<secret>` entries; see token-names.ts): the audit log's actor is
 * `token:<name>`, never the secret or a hash of it.
 */

export interface AuthConfig {
  readonly adminTokens: readonly string[];
  readonly readTokens: readonly string[];
  /** Tokens that may only POST /v1/reports (and send reports and load reports on the xDS port). */
  readonly reportTokens?: readonly string[];
  /** Tokens proxies present on the xDS port (`authorization: Bearer`); nothing on the admin API. */
  readonly proxyTokens?: readonly string[];
}

export type Role = 'admin' | 'read' | 'report' | 'proxy';

const digest = (token: string): Buffer => createHash('sha256').update(token, 'utf8').digest();

/** True when `presented` equals one of the tokens whose digests are `digests`; constant time in the token contents. */
export function tokenMatches(presented: string, digests: readonly Buffer[]): boolean {
  const d = digest(presented);
  let found = false;
  for (const candidate of digests) found = timingSafeEqual(d, candidate) || found;
  return found;
}

/** Splits an environment variable's comma-separated token list (blanks dropped). */
export function parseTokenList(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t.length > 0);
}

/**
 * Tokens from files (a mounted Secret, say): comma- or newline-separated, merged with `base`.
 * An unreadable file, or one that holds no token (a Secret whose key is empty), is an error
 * naming it: starting without the tokens would open the API.
 */
export function authWithFiles(base: AuthConfig, files: { admin?: string; read?: string; report?: string; proxy?: string } | undefined): AuthConfig {
  const read = (role: string, file: string | undefined): string[] => {
    if (file === undefined) return [];
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new Error(`server.admin.tokenFiles.${role}: cannot read ${file}: ${(err as Error).message}`, { cause: err });
    }
    const tokens = parseTokenList(text.replace(/\s+/g, ','));
    if (tokens.length === 0) throw new Error(`server.admin.tokenFiles.${role}: ${file} holds no token (entries are <name>:<token> or <token>, comma- or newline-separated)`);
    return tokens;
  };
  return {
    adminTokens: [...base.adminTokens, ...read('admin', files?.admin)],
    readTokens: [...base.readTokens, ...read('read', files?.read)],
    reportTokens: [...(base.reportTokens ?? []), ...read('report', files?.report)],
    proxyTokens: [...(base.proxyTokens ?? []), ...read('proxy', files?.proxy)],
  };
}

/** `FULCRUM_ADMIN_TOKEN`, `FULCRUM_READ_TOKEN`, `FULCRUM_REPORT_TOKEN`, `FULCRUM_PROXY_TOKEN`: comma-separated lists. */
export function authFromEnv(env: NodeJS.ProcessEnv): AuthConfig {
  return {
    adminTokens: parseTokenList(env.FULCRUM_ADMIN_TOKEN),
    readTokens: parseTokenList(env.FULCRUM_READ_TOKEN),
    reportTokens: parseTokenList(env.FULCRUM_REPORT_TOKEN),
    proxyTokens: parseTokenList(env.FULCRUM_PROXY_TOKEN),
  };
}

export type AuthDecision =
  | { readonly ok: true; readonly actor: string }
  | { readonly ok: false; readonly status: 401 | 403; readonly message: string; readonly challenge?: string };

const OPEN = new Set(['/healthz', '/readyz', '/metrics', '/openapi.json', '/docs', '/']);
const READ_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export function isOpenPath(path: string): boolean {
  return OPEN.has(path) || path.startsWith('/docs/') || path.startsWith('/dashboard/');
}

/** Decides one request. Paths are compared without their query string. */
export class Authorizer {
  private readonly roles: { role: Role; digests: Buffer[]; names: string[] }[];
  /** Whether any admin, read or report token is configured; if not, everything is open (proxy tokens are for the xDS port). */
  readonly enabled: boolean;

  constructor(config: AuthConfig | undefined) {
    const named = nameTokens<Role>([
      { role: 'admin', entries: config?.adminTokens ?? [] },
      { role: 'read', entries: config?.readTokens ?? [] },
      { role: 'report', entries: config?.reportTokens ?? [] },
      { role: 'proxy', entries: config?.proxyTokens ?? [] },
    ]);
    this.roles = named.map(({ role, tokens }) => ({ role, digests: tokens.map((t) => digest(t.secret)), names: tokens.map((t) => t.name) }));
    this.enabled = this.roles.some((r) => r.role !== 'proxy' && r.digests.length > 0);
  }

  /** The roles that have at least one token. */
  configuredRoles(): Set<Role> {
    return new Set(this.roles.filter((r) => r.digests.length > 0).map((r) => r.role));
  }

  /** The role of a presented token, or undefined. Checks every role (no early exit). */
  roleOf(token: string): Role | undefined {
    return this.identify(token)?.role;
  }

  /** The role and name of a presented token, or undefined; constant time in the token contents. */
  identify(token: string): { role: Role; name: string } | undefined {
    const d = digest(token);
    let found: { role: Role; name: string } | undefined;
    for (const r of this.roles)
      r.digests.forEach((candidate, i) => {
        if (timingSafeEqual(d, candidate) && found === undefined) found = { role: r.role, name: r.names[i] ?? r.role };
      });
    return found;
  }

  decide(method: string, path: string, authorization: string | undefined): AuthDecision {
    if (!this.enabled) return { ok: true, actor: 'api' };
    if (isOpenPath(path)) return { ok: true, actor: 'anonymous' };
    const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization ?? '');
    const token = m?.[1];
    if (token === undefined) {
      return { ok: false, status: 401, message: 'a bearer token is required (Authorization: Bearer <token>)', challenge: 'Bearer realm="fulcrum"' };
    }
    const who = this.identify(token);
    if (who === undefined) {
      return { ok: false, status: 401, message: 'unknown bearer token', challenge: 'Bearer realm="fulcrum", error="invalid_token"' };
    }
    const { role } = who;
    const actor = `token:${who.name}`;
    if (role === 'admin') return { ok: true, actor };
    if (role === 'read' && READ_METHODS.has(method)) return { ok: true, actor };
    if (role === 'report' && method === 'POST' && path === '/v1/reports') return { ok: true, actor };
    return {
      ok: false,
      status: 403,
      message: forbidden(role, method, path),
    };
  }
}

function forbidden(role: Role, method: string, path: string): string {
  if (role === 'read') return `a read-only token cannot ${method} ${path}`;
  if (role === 'proxy') return 'a proxy token is for the xDS port only';
  return 'a report token may only POST /v1/reports';
}
