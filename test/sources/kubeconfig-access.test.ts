import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { inClusterAccess, kubeconfigAccess } from '../../src/sources/kubernetes/kubeconfig.js';

/** The kubeconfig reader fulcrum uses instead of @kubernetes/client-node's KubeConfig. */
describe('kubeconfigAccess', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'fulcrum-kubeconfig-access-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const write = (name: string, lines: string[]): string => {
    const file = join(dir, name);
    writeFileSync(file, lines.join('\n'));
    return file;
  };
  const config = (cluster: string, user: string, extra: string[] = []): string[] => [
    'apiVersion: v1',
    'kind: Config',
    `clusters: [{ name: c, cluster: ${cluster} }]`,
    `users: [{ name: u, user: ${user} }]`,
    'contexts: [{ name: x, context: { cluster: c, user: u } }, { name: y, context: { cluster: c } }]',
    'current-context: x',
    ...extra,
  ];

  it('token, inline CA and client certificate (base64 data), trailing slash dropped', () => {
    const b64 = (s: string): string => Buffer.from(s).toString('base64');
    const file = write('a.yaml', config(
      `{ server: "https://k8s.example:6443/", certificate-authority-data: ${b64('CA PEM')}, tls-server-name: api.internal }`,
      `{ token: secret, client-certificate-data: ${b64('CERT PEM')}, client-key-data: ${b64('KEY PEM')} }`,
    ));
    const access = kubeconfigAccess([file]);
    expect(access.server).toBe('https://k8s.example:6443');
    expect(access.ca?.toString()).toBe('CA PEM');
    expect(access.cert?.toString()).toBe('CERT PEM');
    expect(access.key?.toString()).toBe('KEY PEM');
    expect(access.tlsServerName).toBe('api.internal');
    expect(access.authorization?.()).toBe('Bearer secret');
  });

  it('files relative to the kubeconfig folder; tokenFile re-read on every request (rotated tokens)', () => {
    mkdirSync(join(dir, 'creds'));
    writeFileSync(join(dir, 'creds', 'ca.crt'), 'CA FROM FILE');
    writeFileSync(join(dir, 'creds', 'token'), 'first\n');
    const file = write('b.yaml', config('{ server: "https://127.0.0.1:6443", certificate-authority: creds/ca.crt }', '{ tokenFile: creds/token }'));
    const access = kubeconfigAccess([file]);
    expect(access.ca?.toString()).toBe('CA FROM FILE');
    expect(access.authorization?.()).toBe('Bearer first');
    writeFileSync(join(dir, 'creds', 'token'), 'second\n');
    expect(access.authorization?.()).toBe('Bearer second');
  });

  it('basic auth, insecure-skip-tls-verify, an explicit context without a user', () => {
    const file = write('c.yaml', config('{ server: "https://127.0.0.1:6443", insecure-skip-tls-verify: true }', '{ username: admin, password: pw }'));
    const access = kubeconfigAccess([file]);
    expect(access.insecureSkipTlsVerify).toBe(true);
    expect(access.authorization?.()).toBe(`Basic ${Buffer.from('admin:pw').toString('base64')}`);
    expect(kubeconfigAccess([file], 'y').authorization).toBeUndefined();
  });

  it('several files merge as kubectl does: the first that names an entry or a current-context wins', () => {
    const first = write('1.yaml', ['clusters: [{ name: c, cluster: { server: "https://first:1" } }]', 'current-context: x']);
    const second = write('2.yaml', config('{ server: "https://second:2" }', '{ token: t2 }', []).map((l) => l.replace('current-context: x', 'current-context: y')));
    const access = kubeconfigAccess([first, second]);
    expect(access.server).toBe('https://first:1');
    expect(access.authorization?.()).toBe('Bearer t2');
  });

  it('refuses what it cannot honour, naming the entry and field', () => {
    const exec = write('e.yaml', config('{ server: "https://h:1" }', '{ exec: { command: aws } }'));
    expect(() => kubeconfigAccess([exec])).toThrow(/user u: exec.apiVersion must be one of .*got \(none\)/);
    const noCommand = write('ec.yaml', config('{ server: "https://h:1" }', '{ exec: { apiVersion: client.authentication.k8s.io/v1 } }'));
    expect(() => kubeconfigAccess([noCommand])).toThrow(/user u: exec.command is missing/);
    const provider = write('p.yaml', config('{ server: "https://h:1" }', '{ auth-provider: { name: gcp } }'));
    expect(() => kubeconfigAccess([provider])).toThrow(/user u: auth-provider credentials are not supported/);
    const proxy = write('x.yaml', config('{ server: "https://h:1", proxy-url: "http://proxy:3128" }', '{ token: t }'));
    expect(() => kubeconfigAccess([proxy])).toThrow(/cluster c: proxy-url is not supported/);
    const noServer = write('n.yaml', config('{ insecure-skip-tls-verify: true }', '{ token: t }'));
    expect(() => kubeconfigAccess([noServer])).toThrow(/cluster c: server is missing/);
    const halfCert = write('h.yaml', config('{ server: "https://h:1" }', '{ client-certificate-data: QQ== }'));
    expect(() => kubeconfigAccess([halfCert])).toThrow(/user u: a client certificate needs both certificate and key/);
    expect(() => kubeconfigAccess([exec], 'nope')).toThrow(/context nope not found/);
    const noCurrent = write('nc.yaml', ['clusters: []']);
    expect(() => kubeconfigAccess([noCurrent])).toThrow(/no current-context/);
  });
});

describe('inClusterAccess', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'fulcrum-sa-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('the service account CA and token; IPv6 hosts bracketed; plain http on port 8080', () => {
    writeFileSync(join(dir, 'ca.crt'), 'SA CA');
    writeFileSync(join(dir, 'token'), 'sa-token\n');
    const access = inClusterAccess({ KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' }, dir);
    expect(access.server).toBe('https://[fd00::1]:443');
    expect(access.ca?.toString()).toBe('SA CA');
    expect(access.authorization?.()).toBe('Bearer sa-token');
    writeFileSync(join(dir, 'token'), 'rotated');
    expect(access.authorization?.()).toBe('Bearer rotated');
    expect(inClusterAccess({ KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '8080' }, dir).server).toBe('http://10.0.0.1:8080');
  });

  it('no service account mounted: says so at start, and what to do', () => {
    expect(() => inClusterAccess({ KUBERNETES_SERVICE_HOST: '10.0.0.1' }, join(dir, 'missing'))).toThrow(
      /in a pod .* service account's CA cannot be read .*ENOENT.*automountServiceAccountToken.*kubernetes\.kubeconfig/,
    );
  });
});
