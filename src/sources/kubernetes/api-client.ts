/**
 * The two calls fulcrum makes to the Kubernetes API server, over node's http/https: a list (GET a
 * collection, whole JSON body) and a watch (GET with `watch=true`, one JSON event per line, until
 * the server ends it or the caller aborts). Objects stay raw JSON: the mapping reads them
 * structurally. It replaces @kubernetes/client-node, whose import loads every generated API model
 * (~60 MiB RSS and ~1.3–2.6 s at start, bench/RESULTS.md "kube3").
 */
import http from 'node:http';
import https from 'node:https';
import type { KubeAccess } from './kubeconfig.js';

export interface KubeObject {
  readonly metadata?: { readonly name?: string; readonly namespace?: string; readonly resourceVersion?: string } | null;
}

export interface KubeList {
  readonly items: readonly KubeObject[];
  readonly resourceVersion: string;
}

/** One watch event: ADDED, MODIFIED, DELETED, BOOKMARK or ERROR (then `object` is a Status). */
export interface WatchEvent {
  readonly type: string;
  readonly object: KubeObject & { readonly code?: number; readonly message?: string };
}

/** A non-2xx answer; `statusCode` 410 means the resourceVersion is too old (relist). */
export class KubeApiError extends Error {
  constructor(
    message: string,
    readonly statusCode: number,
  ) {
    super(message);
    this.name = 'KubeApiError';
  }
}

export type Query = Readonly<Record<string, string | number | boolean | undefined>>;

/** The longest watch line accepted (one object); a larger one is an error, not unbounded memory. */
const MAX_LINE_CHARS = 64 * 1024 * 1024;

export class KubeClient {
  private readonly agent: http.Agent;
  private readonly secure: boolean;

  constructor(private readonly access: KubeAccess) {
    this.secure = access.server.startsWith('https:');
    this.agent = this.secure
      ? new https.Agent({
          keepAlive: true,
          ...(access.ca ? { ca: access.ca } : {}),
          ...(access.cert ? { cert: access.cert } : {}),
          ...(access.key ? { key: access.key } : {}),
          ...(access.tlsServerName ? { servername: access.tlsServerName } : {}),
          rejectUnauthorized: access.insecureSkipTlsVerify !== true,
        })
      : new http.Agent({ keepAlive: true });
  }

  /** GET a collection; rejects with KubeApiError on a non-2xx answer. */
  async list(path: string, query: Query, signal: AbortSignal): Promise<KubeList> {
    const res = await this.get(path, query, signal);
    const text = await readAll(res).catch((err: unknown) => {
      throw signal.aborted ? signal.reason : err;
    });
    const body = JSON.parse(text) as { items?: KubeObject[] | null; metadata?: { resourceVersion?: string } };
    return { items: body.items ?? [], resourceVersion: body.metadata?.resourceVersion ?? '' };
  }

  /**
   * Watch a collection: `onEvent` for every event line, resolves when the server ends the stream,
   * rejects on a non-2xx answer, a broken connection or `signal` (its reason).
   */
  async watch(path: string, query: Query, onEvent: (event: WatchEvent) => void, signal: AbortSignal): Promise<void> {
    const res = await this.get(path, { ...query, watch: true }, signal);
    res.setEncoding('utf8');
    let pending = '';
    await new Promise<void>((resolve, reject) => {
      res.on('data', (chunk: string) => {
        pending += chunk;
        try {
          let nl: number;
          while ((nl = pending.indexOf('\n')) >= 0) {
            const line = pending.slice(0, nl).trim();
            pending = pending.slice(nl + 1);
            if (line !== '') onEvent(JSON.parse(line) as WatchEvent);
          }
          if (pending.length > MAX_LINE_CHARS) throw new Error(`watch ${path}: an event line over ${MAX_LINE_CHARS} characters`);
        } catch (err) {
          // A line that is not JSON (or a handler that threw): end this watch as an error.
          res.destroy(err instanceof Error ? err : new Error(String(err)));
        }
      });
      res.on('end', resolve);
      res.on('error', (err) => reject(signal.aborted ? signal.reason : err));
      res.on('close', () => (res.complete ? resolve() : reject(signal.aborted ? signal.reason : new Error(`watch ${path}: connection closed`))));
    });
  }

  close(): void {
    this.agent.destroy();
  }

  private async get(path: string, query: Query, signal: AbortSignal): Promise<http.IncomingMessage> {
    const url = new URL(this.access.server + path);
    for (const [k, v] of Object.entries(query)) if (v !== undefined) url.searchParams.set(k, String(v));
    const authorization = await this.access.authorization?.();
    const headers: http.OutgoingHttpHeaders = { accept: 'application/json', ...(authorization ? { authorization } : {}) };
    const request = this.secure ? https.request : http.request;
    return new Promise((resolve, reject) => {
      const req = request(url, { agent: this.agent, headers, signal }, (res) => {
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300) return resolve(res);
        if (status === 401) this.access.unauthorized?.();
        readAll(res).then((text) => reject(apiError(path, status, text)), reject);
      });
      req.on('error', (err) => reject(signal.aborted ? signal.reason : err));
      req.end();
    });
  }
}

function readAll(res: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    res.on('error', reject);
  });
}

/** The API server's Status message when it sent one, else the HTTP reason. */
function apiError(path: string, status: number, text: string): KubeApiError {
  let message = http.STATUS_CODES[status] ?? 'error';
  try {
    const parsed = JSON.parse(text) as { message?: unknown };
    if (typeof parsed.message === 'string') message = parsed.message;
  } catch {
    // not a Status object: keep the HTTP reason
  }
  return new KubeApiError(`GET ${path}: ${message}`, status);
}
