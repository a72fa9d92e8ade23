/**
 * The list/watch client's TLS as a kubeconfig sets it up (kind and minikube kubeconfigs use client
 * certificates): the CA from a file is trusted and nothing else, the client certificate is
 * presented, `tls-server-name` is the name checked, and the token goes in the header.
 */
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { KubeClient } from '../../src/sources/kubernetes/api-client.js';
import { kubeconfigAccess } from '../../src/sources/kubernetes/kubeconfig.js';
import { issue, makeCa, opensslFound, type CertFiles, type TestCa } from '../support/certs.js';
import { describeRequiring } from '../support/requires.js';

describeRequiring('openssl', opensslFound(), 'Kubernetes API client over TLS', () => {
  let dir: string;
  let ca: TestCa;
  let client: CertFiles;
  let server: Server;
  let url: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fulcrum-kube-tls-'));
    ca = await makeCa(dir, 'kube-ca');
    // Only a DNS name: reaching it as 127.0.0.1 passes only with tls-server-name.
    const serving = await issue(ca, 'apiserver', ['DNS:kube.internal']);
    client = await issue(ca, 'fulcrum-client', ['DNS:fulcrum']);
    server = createServer(
      { cert: await readFile(serving.cert), key: await readFile(serving.key), ca: await readFile(ca.cert), requestCert: true, rejectUnauthorized: true },
      (req, res) => {
        const peer = (req.socket as TLSSocket).getPeerCertificate();
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ metadata: { resourceVersion: '7' }, items: [{ metadata: { name: String(peer.subject?.CN), namespace: req.headers.authorization ?? '' } }] }));
      },
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((r) => server?.close(r));
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const kubeconfig = async (cluster: string, user: string): Promise<string> => {
    const file = join(dir, `kubeconfig-${Math.random().toString(36).slice(2)}.yaml`);
    await writeFile(file, [`clusters: [{ name: c, cluster: ${cluster} }]`, `users: [{ name: u, user: ${user} }]`, 'contexts: [{ name: x, context: { cluster: c, user: u } }]', 'current-context: x'].join('\n'));
    return file;
  };
  const list = async (file: string) => {
    const kube = new KubeClient(kubeconfigAccess([file]));
    try {
      return await kube.list('/api/v1/services', {}, AbortSignal.timeout(10_000));
    } finally {
      kube.close();
    }
  };
  const b64 = async (path: string): Promise<string> => (await readFile(path)).toString('base64');

  it('client certificate (inline data) and token presented, server checked against the CA file under tls-server-name', async () => {
    const file = await kubeconfig(
      `{ server: "${url}", certificate-authority: kube-ca.pem, tls-server-name: kube.internal }`,
      `{ token: tok, client-certificate-data: ${await b64(client.cert)}, client-key-data: ${await b64(client.key)} }`,
    );
    const result = await list(file);
    expect(result.resourceVersion).toBe('7');
    expect(result.items[0]?.metadata).toEqual({ name: 'fulcrum-client', namespace: 'Bearer tok' });
  });

  it('an exec credential plugin (a real executable) supplies the token, with its env and KUBERNETES_EXEC_INFO', async () => {
    // The plugin answers with a token built from its env and the interactive flag it was given.
    const script = join(dir, 'get-token.sh');
    await writeFile(
      script,
      [
        '#!/bin/sh',
        'case "$KUBERNETES_EXEC_INFO" in *\'"interactive":false\'*) mode=batch ;; *) mode=unknown ;; esac',
        'printf \'{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"%s-%s"}}\' "$REGION" "$mode"',
        '',
      ].join('\n'),
    );
    await chmod(script, 0o755);
    const file = await kubeconfig(
      `{ server: "${url}", certificate-authority: kube-ca.pem, tls-server-name: kube.internal }`,
      `{ client-certificate: fulcrum-client.pem, client-key: fulcrum-client.key, exec: { apiVersion: client.authentication.k8s.io/v1, command: ./get-token.sh, env: [{ name: REGION, value: eu }] } }`,
    );
    const result = await list(file);
    expect(result.items[0]?.metadata).toEqual({ name: 'fulcrum-client', namespace: 'Bearer eu-batch' });
  });

  it('refused: without tls-server-name (the name does not match), without the CA, without the client certificate', async () => {
    const cert = `client-certificate: fulcrum-client.pem, client-key: fulcrum-client.key`;
    await expect(list(await kubeconfig(`{ server: "${url}", certificate-authority: kube-ca.pem }`, `{ ${cert} }`))).rejects.toThrow(/altnames|IP: 127\.0\.0\.1/);
    await expect(list(await kubeconfig(`{ server: "${url}", tls-server-name: kube.internal }`, `{ ${cert} }`))).rejects.toThrow(/self[- ]signed|unable to (verify|get local issuer)/i);
    await expect(list(await kubeconfig(`{ server: "${url}", certificate-authority: kube-ca.pem, tls-server-name: kube.internal }`, '{ token: tok }'))).rejects.toThrow();
  });
});
