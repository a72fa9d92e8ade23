/**
 * kubeconfig `exec` credential plugins (client.authentication.k8s.io v1 and v1beta1), which cloud
 * kubeconfigs use (`aws eks get-token`, `gke-gcloud-auth-plugin`, `kubelogin`): the command runs
 * (off the event loop) with its args and env, its ExecCredential's token is sent as the bearer
 * token and reused until its `expirationTimestamp` (or, without one, until the API server answers
 * 401), as kubectl does. A plugin that returns a client certificate instead of a token is refused
 * with a clear error: the connection's TLS is set up once, at start.
 */
import { execFile } from 'node:child_process';
import { isAbsolute, join } from 'node:path';

type Entry = Record<string, unknown>;

export interface ExecPlugin {
  readonly command: string;
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly apiVersion: string;
  /** Names the kubeconfig user in errors. */
  readonly where: string;
}

const API_VERSIONS = ['client.authentication.k8s.io/v1', 'client.authentication.k8s.io/v1beta1'];
/** A token is renewed this long before it expires, so no request carries one that is expiring. */
const EARLY_MS = 10_000;
const PLUGIN_TIMEOUT_MS = 60_000;

/** The `exec` entry of a kubeconfig user, checked; `base` is the kubeconfig's folder. */
export function parseExecPlugin(body: unknown, base: string, where: string): ExecPlugin {
  const e = (body ?? {}) as Entry;
  const command = typeof e.command === 'string' ? e.command : '';
  if (command === '') throw new Error(`${where}: exec.command is missing`);
  const apiVersion = typeof e.apiVersion === 'string' ? e.apiVersion : '';
  if (!API_VERSIONS.includes(apiVersion)) throw new Error(`${where}: exec.apiVersion must be one of ${API_VERSIONS.join(', ')}, got ${apiVersion || '(none)'}`);
  const args = Array.isArray(e.args) ? e.args.map(String) : [];
  const env: Record<string, string> = {};
  for (const [i, item] of (Array.isArray(e.env) ? (e.env as Entry[]) : []).entries()) {
    if (typeof item?.name !== 'string' || typeof item.value !== 'string') throw new Error(`${where}: exec.env[${i}] needs a name and a value`);
    env[item.name] = item.value;
  }
  // As client-go: a relative path with a folder in it is relative to the kubeconfig; a bare name is looked up in PATH.
  const resolved = !isAbsolute(command) && command.includes('/') ? join(base, command) : command;
  return { command: resolved, args, env, apiVersion, where };
}

/** Runs a plugin; resolves with its standard output. */
export type RunPlugin = (plugin: ExecPlugin) => Promise<string>;

const runPlugin: RunPlugin = (plugin) =>
  new Promise((resolve, reject) => {
    const info = JSON.stringify({ apiVersion: plugin.apiVersion, kind: 'ExecCredential', spec: { interactive: false } });
    const env = { ...process.env, ...plugin.env, KUBERNETES_EXEC_INFO: info };
    execFile(plugin.command, [...plugin.args], { env, timeout: PLUGIN_TIMEOUT_MS, maxBuffer: 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${plugin.where}: exec plugin ${plugin.command} failed: ${err.message}${stderr ? `: ${stderr.trim()}` : ''}`));
      else resolve(stdout);
    });
  });

export class ExecCredential {
  private token: string | undefined;
  private expiresAt = Number.POSITIVE_INFINITY;
  private pending: Promise<string> | undefined;

  constructor(
    private readonly plugin: ExecPlugin,
    private readonly run: RunPlugin = runPlugin,
    private readonly now: () => number = Date.now,
  ) {}

  /** `Bearer <token>`, running the plugin when there is no token or it is about to expire. */
  async authorization(): Promise<string> {
    if (this.token !== undefined && this.now() < this.expiresAt - EARLY_MS) return `Bearer ${this.token}`;
    // Concurrent requests (one list/watch per resource) share one run of the plugin.
    this.pending ??= this.fetch().finally(() => (this.pending = undefined));
    return `Bearer ${await this.pending}`;
  }

  /** The API server refused the token (401): the next request runs the plugin again. */
  invalidate(): void {
    this.token = undefined;
  }

  private async fetch(): Promise<string> {
    const status = parseCredential(await this.run(this.plugin), this.plugin.where);
    this.token = status.token;
    this.expiresAt = status.expiresAt;
    return status.token;
  }
}

function parseCredential(stdout: string, where: string): { token: string; expiresAt: number } {
  let parsed: Entry;
  try {
    parsed = JSON.parse(stdout) as Entry;
  } catch {
    throw new Error(`${where}: exec plugin output is not an ExecCredential (not JSON)`);
  }
  const status = (parsed?.status ?? {}) as Entry;
  if (typeof status.token !== 'string' || status.token === '') {
    const certOnly = typeof status.clientCertificateData === 'string';
    throw new Error(`${where}: exec plugin returned ${certOnly ? 'a client certificate; only tokens are supported' : 'no status.token'}`);
  }
  const expiry = typeof status.expirationTimestamp === 'string' ? Date.parse(status.expirationTimestamp) : Number.NaN;
  return { token: status.token, expiresAt: Number.isFinite(expiry) ? expiry : Number.POSITIVE_INFINITY };
}
