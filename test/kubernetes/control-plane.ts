/**
 * A real Kubernetes control plane for tests, envtest-style: etcd + kube-apiserver only (no
 * controller-manager, scheduler or kubelet), on loopback, in a temp dir, on free ports.
 *
 *   describeControlPlane('kubernetes source', () => {
 *     let cp: ControlPlane;
 *     beforeAll(async () => { cp = await startControlPlane(); }, 180_000);
 *     afterAll(() => cp?.stop());
 *     ...
 *   });
 *
 * Binaries: `KUBE_APISERVER_BIN` / `ETCD_BIN`, else `.tools/bin/{kube-apiserver,etcd}` as built by
 * `scripts/install-kube-test-binaries.sh`. When they are missing the suite is skipped with a
 * printed reason locally, and fails under CI (`CI` set) or with `FULCRUM_REQUIRE_KUBE=1`.
 * `FULCRUM_KUBE_ECHO=1` mirrors both processes' output to stderr.
 */
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CoreV1Api, DiscoveryV1Api, KubeConfig } from '@kubernetes/client-node';
import { freePorts } from '../support/ports.js';
import { waitFor } from '../support/wait.js';
import { describeRequiring } from '../support/requires.js';
import { Proc } from '../support/proc.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface ControlPlaneBinaries {
  apiserver: string | undefined;
  etcd: string | undefined;
  /** Why something is missing (for the skip/fail message). */
  detail: string;
}

export function findControlPlaneBinaries(): ControlPlaneBinaries {
  const pick = (env: string | undefined, fallback: string): string | undefined => {
    const candidate = env && env !== '' ? env : fallback;
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      return undefined;
    }
  };
  const apiserver = pick(process.env.KUBE_APISERVER_BIN, path.join(repoRoot, '.tools/bin/kube-apiserver'));
  const etcd = pick(process.env.ETCD_BIN, path.join(repoRoot, '.tools/bin/etcd'));
  const missing = [
    apiserver ? undefined : `kube-apiserver (KUBE_APISERVER_BIN or .tools/bin/kube-apiserver)`,
    etcd ? undefined : `etcd (ETCD_BIN or .tools/bin/etcd)`,
  ].filter((x) => x !== undefined);
  return {
    apiserver,
    etcd,
    detail: missing.length === 0 ? 'found' : `missing ${missing.join(' and ')}; run scripts/install-kube-test-binaries.sh`,
  };
}

/**
 * `describe` that needs the control-plane binaries: skipped (with a printed reason) when they are
 * missing locally, a failing test under CI.
 */
export function describeControlPlane(name: string, fn: () => void): void {
  const found = findControlPlaneBinaries();
  describeRequiring('kube-apiserver and etcd', { ok: Boolean(found.apiserver && found.etcd), detail: found.detail }, name, fn, {
    requireEnv: 'FULCRUM_REQUIRE_KUBE',
  });
}

export interface ControlPlane {
  /** https://127.0.0.1:<port> */
  readonly server: string;
  readonly token: string;
  /** A kubeconfig file (token auth, TLS verified against the apiserver's self-signed CA). */
  readonly kubeconfigPath: string;
  readonly dir: string;
  /** Kill kube-apiserver (SIGKILL by default: no graceful goodbye to watchers) and wait for it to exit. */
  stopApiServer(signal?: NodeJS.Signals): Promise<void>;
  /** Start kube-apiserver again on the same port, against the same etcd, and wait for /readyz. */
  startApiServer(): Promise<void>;
  /** Last lines of both processes' output, for failure messages. */
  logs(): string;
  stop(): Promise<void>;
}

const TOKEN = 'fulcrum-test-token';

/** Clients of the control plane's core and discovery APIs, through its kubeconfig (token, its CA). */
export function apiClients(cp: Pick<ControlPlane, 'kubeconfigPath'>): { core: CoreV1Api; discovery: DiscoveryV1Api } {
  const kc = new KubeConfig();
  kc.loadFromFile(cp.kubeconfigPath);
  return { core: kc.makeApiClient(CoreV1Api), discovery: kc.makeApiClient(DiscoveryV1Api) };
}

/** GET a path on the API server with the static token; resolves with the status and body. */
export function apiGet(server: string, token: string, pathname: string, ca?: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get(
      new URL(pathname, server),
      { headers: { authorization: `Bearer ${token}` }, ...(ca ? { ca } : { rejectUnauthorized: false }), timeout: 5000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

export async function startControlPlane(): Promise<ControlPlane> {
  const bins = findControlPlaneBinaries();
  if (!bins.apiserver || !bins.etcd) throw new Error(bins.detail);
  const apiserverBin = bins.apiserver;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'fulcrum-kube-'));
  const [etcdClient, etcdPeer, securePort] = (await freePorts(3)) as [number, number, number];
  const etcdUrl = `http://127.0.0.1:${etcdClient}`;
  const peerUrl = `http://127.0.0.1:${etcdPeer}`;
  const server = `https://127.0.0.1:${securePort}`;

  const etcd = new Proc(
    'etcd',
    spawn(
      bins.etcd,
      [
        `--name=default`,
        `--data-dir=${path.join(dir, 'etcd')}`,
        `--listen-client-urls=${etcdUrl}`,
        `--advertise-client-urls=${etcdUrl}`,
        `--listen-peer-urls=${peerUrl}`,
        `--initial-advertise-peer-urls=${peerUrl}`,
        `--initial-cluster=default=${peerUrl}`,
        '--unsafe-no-fsync=true',
        '--log-level=warn',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    ),
  );

  // Service-account keys: the apiserver refuses to start without an issuer and keys.
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const saKey = path.join(dir, 'sa.key');
  const saPub = path.join(dir, 'sa.pub');
  await writeFile(saKey, privateKey.export({ type: 'pkcs8', format: 'pem' }));
  await writeFile(saPub, publicKey.export({ type: 'spki', format: 'pem' }));
  const tokenFile = path.join(dir, 'tokens.csv');
  await writeFile(tokenFile, `${TOKEN},fulcrum-test,fulcrum-test-uid,"system:masters"\n`);
  const certDir = path.join(dir, 'certs');
  fs.mkdirSync(certDir);

  const apiserverArgs = [
    `--etcd-servers=${etcdUrl}`,
    `--secure-port=${securePort}`,
    '--bind-address=127.0.0.1',
    '--advertise-address=127.0.0.1',
    `--cert-dir=${certDir}`,
    `--token-auth-file=${tokenFile}`,
    '--authorization-mode=AlwaysAllow',
    `--service-account-issuer=https://127.0.0.1:${securePort}`,
    `--service-account-key-file=${saPub}`,
    `--service-account-signing-key-file=${saKey}`,
    '--service-cluster-ip-range=10.0.0.0/24',
    '--disable-admission-plugins=ServiceAccount',
    '--allow-privileged=true',
    // No 'kubernetes' Service endpoints: the reconciler refuses a loopback advertise address.
    '--endpoint-reconciler-type=none',
    '--v=1',
  ];

  let apiserver: Proc | undefined;
  const logs = (): string =>
    [`--- etcd (${etcd.exit ?? 'running'}) ---`, etcd.tail(), `--- kube-apiserver (${apiserver?.exit ?? 'running'}) ---`, apiserver?.tail() ?? ''].join(
      '\n',
    );

  const waitReady = async (): Promise<void> => {
    await waitFor(
      async (ctx) => {
        if (etcd.exit) ctx.abort(new Error(`etcd ${etcd.exit}\n${logs()}`));
        if (apiserver?.exit) ctx.abort(new Error(`kube-apiserver ${apiserver.exit}\n${logs()}`));
        const res = await apiGet(server, TOKEN, '/readyz');
        ctx.note(`${res.status} ${res.body.slice(-300)}`);
        return res.status === 200;
      },
      { what: `kube-apiserver ${server}/readyz`, timeoutMs: 150_000, intervalMs: 250 },
    );
  };

  const startApiServer = async (): Promise<void> => {
    apiserver = new Proc('kube-apiserver', spawn(apiserverBin, apiserverArgs, { stdio: ['ignore', 'pipe', 'pipe'] }));
    await waitReady();
  };

  try {
    await startApiServer();
  } catch (err) {
    await apiserver?.stop('SIGKILL');
    await etcd.stop('SIGKILL');
    await rm(dir, { recursive: true, force: true });
    throw err;
  }

  // The apiserver wrote a self-signed CA and serving cert for 127.0.0.1 into cert-dir; the
  // kubeconfig trusts exactly that file, so the client really verifies TLS.
  const kubeconfigPath = path.join(dir, 'kubeconfig.yaml');
  await writeFile(
    kubeconfigPath,
    [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '- name: test',
      '  cluster:',
      `    server: ${server}`,
      `    certificate-authority: ${path.join(certDir, 'apiserver.crt')}`,
      'users:',
      '- name: test',
      '  user:',
      `    token: ${TOKEN}`,
      'contexts:',
      '- name: test',
      '  context: { cluster: test, user: test }',
      'current-context: test',
      '',
    ].join('\n'),
  );

  return {
    server,
    token: TOKEN,
    kubeconfigPath,
    dir,
    logs,
    async stopApiServer(signal: NodeJS.Signals = 'SIGKILL') {
      await apiserver?.stop(signal);
    },
    startApiServer,
    async stop() {
      await apiserver?.stop('SIGTERM', 5_000);
      await etcd.stop('SIGTERM', 5_000);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
