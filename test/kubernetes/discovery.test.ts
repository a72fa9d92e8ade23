import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { KubernetesContribution } from '../../src/sources/kubernetes/mapping.js';
import { KubernetesDiscovery } from '../../src/sources/kubernetes/discovery.js';
import { waitFor } from '../support/wait.js';

const quiet = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

/** An API server that lists nothing and holds watches open: enough for discovery to sync an empty view. */
function emptyApiServer(): Promise<Server> {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://x');
    res.setHeader('content-type', 'application/json');
    if (url.searchParams.get('watch') === 'true') {
      res.writeHead(200);
      return; // held open until the client goes away
    }
    const kind = url.pathname.endsWith('endpointslices') ? 'EndpointSliceList' : 'ServiceList';
    res.end(JSON.stringify({ kind, apiVersion: 'v1', metadata: { resourceVersion: '1' }, items: [] }));
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

async function kubeconfigFor(dir: string, server: string): Promise<string> {
  const file = join(dir, 'kubeconfig');
  await writeFile(
    file,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'c', cluster: { server, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'u', user: { token: 't' } }],
      contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
      'current-context': 'x',
    }),
  );
  return file;
}

describe('KubernetesDiscovery', () => {
  let dir: string | undefined;
  let api: Server | undefined;
  afterEach(async () => {
    api?.closeAllConnections();
    api?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('starts without waiting for an API server that does not answer, unsynced until stopped', async () => {
    dir = await mkdtemp(join(tmpdir(), 'fulcrum-k8s-'));
    const kubeconfig = await kubeconfigFor(dir, 'http://127.0.0.1:1');
    const discovery = new KubernetesDiscovery({ settings: { kubeconfig, nodeTopology: false }, log: quiet, onChange: () => undefined });
    discovery.start();
    expect(discovery.synced).toBe(false);
    await discovery.stop();
    expect(discovery.synced).toBe(false);
  });

  it('says why it has not synced (RBAC: 403 on EndpointSlices), for /readyz', async () => {
    dir = await mkdtemp(join(tmpdir(), 'fulcrum-k8s-'));
    api = createServer((req: IncomingMessage, res: ServerResponse) => {
      res.setHeader('content-type', 'application/json');
      if (new URL(req.url ?? '/', 'http://x').pathname.endsWith('endpointslices')) {
        res.writeHead(403);
        res.end(JSON.stringify({ kind: 'Status', code: 403, message: 'endpointslices.discovery.k8s.io is forbidden: User "system:serviceaccount:fulcrum-system:fulcrum" cannot list resource "endpointslices"' }));
        return;
      }
      if (new URL(req.url ?? '/', 'http://x').searchParams.get('watch') === 'true') return void res.writeHead(200);
      res.end(JSON.stringify({ metadata: { resourceVersion: '1' }, items: [] }));
    });
    await new Promise<void>((resolve) => api?.listen(0, '127.0.0.1', resolve));
    const kubeconfig = await kubeconfigFor(dir, `http://127.0.0.1:${(api.address() as AddressInfo).port}`);
    const discovery = new KubernetesDiscovery({ settings: { kubeconfig, nodeTopology: false }, log: quiet, onChange: () => undefined });
    expect(discovery.unsyncedReason()).toBe('kubernetes discovery has not synced');
    discovery.start();
    try {
      await waitFor(() => discovery.unsyncedReason().includes('403'), { what: 'the 403 in the reason', timeoutMs: 30_000 });
      expect(discovery.unsyncedReason()).toMatch(/^kubernetes discovery has not synced: EndpointSlice: GET \/apis\/discovery.k8s.io\/v1\/endpointslices: endpointslices.discovery.k8s.io is forbidden: .* \(403\)$/);
      expect(discovery.synced).toBe(false);
    } finally {
      await discovery.stop();
    }
  });

  it('is synced once the first complete view arrives, and hands that view on', async () => {
    dir = await mkdtemp(join(tmpdir(), 'fulcrum-k8s-'));
    api = await emptyApiServer();
    const kubeconfig = await kubeconfigFor(dir, `http://127.0.0.1:${(api.address() as AddressInfo).port}`);
    const views: KubernetesContribution[] = [];
    const discovery = new KubernetesDiscovery({ settings: { kubeconfig, nodeTopology: false }, log: quiet, onChange: (v) => void views.push(v) });
    discovery.start();
    try {
      await waitFor(() => discovery.synced, { what: 'discovery synced', timeoutMs: 30_000 });
      // What `fulcrum serve` waits for before compacting start-up's garbage.
      await expect(discovery.firstSync).resolves.toBeUndefined();
      expect(views).toHaveLength(1);
      expect(views[0]?.clusters).toEqual([]);
    } finally {
      await discovery.stop();
    }
  });
});
