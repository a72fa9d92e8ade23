/**
 * Where the Kubernetes API server is and how to authenticate to it: the pod's service account
 * (in-cluster) or a kubeconfig file, read the way kubectl reads it, for the credentials fulcrum
 * supports: a bearer token (inline or `tokenFile`, re-read on every request so rotated projected
 * tokens are picked up), client certificates, basic auth; CA inline or from a file, or
 * insecure-skip-tls-verify; tls-server-name. Relative file paths are relative to the kubeconfig's
 * folder; `exec` credential plugins (exec-credential.ts). Legacy `auth-provider` entries and
 * `proxy-url` are refused with a clear error rather than silently ignored.
 */
import { existsSync, readFileSync } from 'node:fs';
import { isIPv6 } from 'node:net';
import { homedir } from 'node:os';
import { delimiter, dirname, isAbsolute, join, resolve } from 'node:path';
import YAML from 'yaml';
import { ExecCredential, parseExecPlugin } from './exec-credential.js';

/** What a request to the API server needs. */
export interface KubeAccess {
  /** Base URL, `https://host:port` (or http), without a trailing slash. */
  readonly server: string;
  readonly ca?: Buffer;
  readonly cert?: Buffer;
  readonly key?: Buffer;
  readonly insecureSkipTlsVerify?: boolean;
  readonly tlsServerName?: string;
  /** The `authorization` header value for the next request, if any (a token file is re-read). */
  readonly authorization?: () => string | undefined | Promise<string | undefined>;
  /** The API server answered 401: a cached credential (an exec plugin's token) is dropped. */
  readonly unauthorized?: () => void;
}

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** In a pod: `KUBERNETES_SERVICE_HOST/PORT`, the service account's CA and (rotating) token. */
export function inClusterAccess(env: NodeJS.ProcessEnv = process.env, dir = SERVICE_ACCOUNT_DIR): KubeAccess {
  const host = env.KUBERNETES_SERVICE_HOST ?? '';
  const port = env.KUBERNETES_SERVICE_PORT ?? '443';
  const scheme = port === '80' || port === '8080' || port === '8001' ? 'http' : 'https';
  const tokenPath = join(dir, 'token');
  let ca: Buffer;
  try {
    ca = readFileSync(join(dir, 'ca.crt'));
  } catch (err) {
    throw new Error(
      `kubernetes: in a pod (KUBERNETES_SERVICE_HOST is set) but the service account's CA cannot be read (${(err as Error).message}); ` +
        'mount the service account token (automountServiceAccountToken) or set kubernetes.kubeconfig',
      { cause: err },
    );
  }
  return {
    server: `${scheme}://${isIPv6(host) ? `[${host}]` : host}:${port}`,
    ca,
    authorization: () => `Bearer ${readFileSync(tokenPath, 'utf8').trim()}`,
  };
}

type Entry = Record<string, unknown>;
interface Named {
  readonly name: string;
  readonly body: Entry;
  /** The kubeconfig file's folder: relative paths inside the entry are relative to it. */
  readonly base: string;
}
interface Merged {
  readonly clusters: Map<string, Named>;
  readonly users: Map<string, Named>;
  readonly contexts: Map<string, Named>;
  currentContext: string | undefined;
}

function section(file: string, doc: Entry, list: 'clusters' | 'users' | 'contexts', field: string, into: Map<string, Named>): void {
  const items = doc[list] ?? [];
  if (!Array.isArray(items)) throw new Error(`kubeconfig ${file}: ${list} must be a list`);
  for (const [i, item] of (items as unknown[]).entries()) {
    const entry = (item ?? {}) as Entry;
    if (typeof entry.name !== 'string') throw new Error(`kubeconfig ${file}: ${list}[${i}].name must be a string`);
    const body = (entry[field] ?? {}) as Entry;
    // As kubectl merges several files: the first file that names an entry wins.
    if (!into.has(entry.name)) into.set(entry.name, { name: entry.name, body, base: dirname(resolve(file)) });
  }
}

function mergeFiles(files: readonly string[]): Merged {
  const merged: Merged = { clusters: new Map(), users: new Map(), contexts: new Map(), currentContext: undefined };
  for (const file of files) {
    const doc = (readKubeconfig(file) ?? {}) as Entry;
    if (typeof doc !== 'object' || Array.isArray(doc)) throw new Error(`kubeconfig ${file}: not a kubeconfig (expected a mapping)`);
    section(file, doc, 'clusters', 'cluster', merged.clusters);
    section(file, doc, 'users', 'user', merged.users);
    section(file, doc, 'contexts', 'context', merged.contexts);
    const current = doc['current-context'];
    if (merged.currentContext === undefined && typeof current === 'string' && current !== '') merged.currentContext = current;
  }
  return merged;
}

/** The file's YAML; an error names the file (`fulcrum serve` prints only the message, and a YAML error alone says where in which file nothing). */
function readKubeconfig(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`kubeconfig ${file}: cannot be read (${(err as Error).message})`, { cause: err });
  }
  try {
    return YAML.parse(text);
  } catch (err) {
    throw new Error(`kubeconfig ${file}: not YAML (${(err as Error).message.split('\n')[0]})`, { cause: err });
  }
}

const str = (e: Entry, key: string): string | undefined => (typeof e[key] === 'string' && e[key] !== '' ? e[key] : undefined);

/** Inline base64 data, else the file (relative to the kubeconfig), else nothing. */
function material(n: Named, dataKey: string, fileKey: string): Buffer | undefined {
  const data = str(n.body, dataKey);
  if (data !== undefined) return Buffer.from(data, 'base64');
  const file = str(n.body, fileKey);
  return file === undefined ? undefined : readFileSync(isAbsolute(file) ? file : join(n.base, file));
}

function clusterAccess(cluster: Named): Omit<KubeAccess, 'authorization' | 'cert' | 'key'> {
  const where = `kubeconfig cluster ${cluster.name}`;
  const server = str(cluster.body, 'server');
  if (server === undefined) throw new Error(`${where}: server is missing`);
  if (!/^https?:\/\//.test(server)) throw new Error(`${where}: server must be an http(s) URL, got ${server}`);
  if (str(cluster.body, 'proxy-url') !== undefined) throw new Error(`${where}: proxy-url is not supported`);
  const ca = material(cluster, 'certificate-authority-data', 'certificate-authority');
  const tlsServerName = str(cluster.body, 'tls-server-name');
  return {
    server: server.replace(/\/+$/, ''),
    ...(ca ? { ca } : {}),
    ...(cluster.body['insecure-skip-tls-verify'] === true ? { insecureSkipTlsVerify: true } : {}),
    ...(tlsServerName ? { tlsServerName } : {}),
  };
}

function userAccess(user: Named): Pick<KubeAccess, 'authorization' | 'unauthorized' | 'cert' | 'key'> {
  const where = `kubeconfig user ${user.name}`;
  if (user.body['auth-provider'] !== undefined) {
    throw new Error(`${where}: auth-provider credentials are not supported (kubectl dropped them too); use an exec plugin, a token, tokenFile or client certificate`);
  }
  const cert = material(user, 'client-certificate-data', 'client-certificate');
  const key = material(user, 'client-key-data', 'client-key');
  if ((cert === undefined) !== (key === undefined)) throw new Error(`${where}: a client certificate needs both certificate and key`);
  const tls = cert && key ? { cert, key } : {};
  if (user.body.exec !== undefined) {
    const exec = new ExecCredential(parseExecPlugin(user.body.exec, user.base, where));
    return { ...tls, authorization: () => exec.authorization(), unauthorized: () => exec.invalidate() };
  }
  const token = str(user.body, 'token');
  const tokenFile = str(user.body, 'tokenFile');
  const username = str(user.body, 'username');
  const password = str(user.body, 'password');
  let authorization: (() => string) | undefined;
  if (token !== undefined) authorization = () => `Bearer ${token}`;
  else if (tokenFile !== undefined) {
    const path = isAbsolute(tokenFile) ? tokenFile : join(user.base, tokenFile);
    authorization = () => `Bearer ${readFileSync(path, 'utf8').trim()}`;
  } else if (username !== undefined && password !== undefined) {
    const basic = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
    authorization = () => basic;
  }
  return { ...tls, ...(authorization ? { authorization } : {}) };
}

/** Read one or more kubeconfig files (merged as kubectl does) and resolve `context` (default: current-context). */
export function kubeconfigAccess(files: readonly string[], context?: string): KubeAccess {
  const merged = mergeFiles(files);
  const name = context ?? merged.currentContext;
  if (name === undefined) throw new Error(`kubeconfig ${files.join(delimiter)}: no current-context, and no context given`);
  const ctx = merged.contexts.get(name);
  if (!ctx) throw new Error(`kubeconfig ${files.join(delimiter)}: context ${name} not found`);
  const clusterName = str(ctx.body, 'cluster');
  const cluster = clusterName === undefined ? undefined : merged.clusters.get(clusterName);
  if (!cluster) throw new Error(`kubeconfig context ${name}: cluster ${clusterName ?? '(none)'} not found`);
  const userName = str(ctx.body, 'user');
  const user = userName === undefined ? undefined : merged.users.get(userName);
  if (userName !== undefined && !user) throw new Error(`kubeconfig context ${name}: user ${userName} not found`);
  return { ...clusterAccess(cluster), ...(user ? userAccess(user) : {}) };
}

/**
 * In a pod, the service account; outside one (a developer's machine), the kubeconfig kubectl
 * would use ($KUBECONFIG, else ~/.kube/config); with neither, a clear error at start rather than
 * a watch that retries an undefined host for ever.
 */
export function inClusterOrDefaultAccess(env: NodeJS.ProcessEnv = process.env): KubeAccess {
  if (env.KUBERNETES_SERVICE_HOST) return inClusterAccess(env);
  const listed = (env.KUBECONFIG ?? '').split(delimiter).filter((f) => f !== '');
  const existing = listed.filter((f) => existsSync(f));
  if (existing.length > 0) return kubeconfigAccess(existing);
  const home = join(env.HOME ?? homedir(), '.kube', 'config');
  if (listed.length === 0 && existsSync(home)) return kubeconfigAccess([home]);
  throw new Error(
    'kubernetes.enabled: not running in a Kubernetes pod (KUBERNETES_SERVICE_HOST is not set) and no kubeconfig found ' +
      `(kubernetes.kubeconfig in the config file, $KUBECONFIG, or ${home}); give one, or set kubernetes.enabled: false`,
  );
}
