import type { Shape } from './api-shapes.js';
import { CommandError } from './usage-error.js';

/** The operator commands' one way to the admin API: GET with the bearer token, JSON back, errors named. */

export const DEFAULT_SERVER = 'http://127.0.0.1:8080';

export interface AdminClientOptions {
  readonly server: string;
  readonly token?: string;
  readonly timeoutMs?: number;
  readonly fetch?: typeof fetch;
}

export class AdminClient {
  private readonly base: URL;

  constructor(private readonly options: AdminClientOptions) {
    try {
      this.base = new URL(options.server);
    } catch {
      throw new CommandError(`--server: not a URL: ${JSON.stringify(options.server)} (e.g. ${DEFAULT_SERVER})`);
    }
  }

  /**
   * GETs `path` and parses the JSON body, which must have `shape` (api-shapes.ts SHAPES); `allow`
   * lists non-2xx statuses returned rather than thrown.
   */
  async get(path: string, shape: Shape, allow: readonly number[] = []): Promise<{ status: number; body: unknown }> {
    const url = apiUrl(this.base, path);
    const doFetch = this.options.fetch ?? fetch;
    let res: Response;
    try {
      res = await doFetch(url, {
        headers: { accept: 'application/json', ...(this.options.token ? { authorization: `Bearer ${this.options.token}` } : {}) },
        signal: AbortSignal.timeout(this.options.timeoutMs ?? 10_000),
      });
    } catch (err) {
      throw new CommandError(`cannot reach the fulcrum admin API at ${this.base.origin}: ${causeOf(err)} (set --server or FULCRUM_ADMIN_URL)`);
    }
    const body: unknown = await res.json().catch(() => undefined);
    if (!res.ok && !allow.includes(res.status)) throw new CommandError(`GET ${url.pathname}${url.search}: ${res.status} ${apiMessage(body, res)}`);
    if (!shape(body)) {
      const what = body === undefined ? `not JSON (${res.headers.get('content-type') ?? 'no content type'})` : 'JSON of another shape';
      throw new CommandError(`${this.base.origin} did not answer as a fulcrum admin API (GET ${url.pathname}: ${res.status}, ${what}); is --server (or FULCRUM_ADMIN_URL) its admin address?`);
    }
    return { status: res.status, body };
  }
}

/**
 * `path` (`/v1/...`) under the server's URL, its path prefix kept: an admin API behind a reverse
 * proxy at `https://ops.example/fulcrum/` is asked `/fulcrum/v1/...`, not `/v1/...` (which
 * `new URL('/v1/...', base)` gives).
 */
export function apiUrl(base: URL, path: string): URL {
  const prefix = base.pathname.endsWith('/') ? base.pathname : `${base.pathname}/`;
  return new URL(path.replace(/^\/+/, ''), new URL(prefix, base));
}

function causeOf(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (err as Error).message;
}

function apiMessage(body: unknown, res: Response): string {
  const message = (body as { message?: unknown } | undefined)?.message;
  const hint = res.status === 401 || res.status === 403 ? ' (set FULCRUM_ADMIN_TOKEN to a read or admin token)' : '';
  return `${typeof message === 'string' ? message : res.statusText}${hint}`;
}
