import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

/**
 * A stand-in for kube-apiserver where the real one cannot say what a test needs (it refuses
 * loopback endpoint addresses, and cannot be made to answer 503 on demand): lists what `state`
 * holds, holds watches open; answers 503 to everything while `state.up` is false.
 */
export interface FakeApiState {
  up: boolean;
  services: readonly object[];
  slices: readonly object[];
  /** Requests answered so far (counted by the server). */
  requests?: number;
  /** The next watch of each of these collections answers 410 Gone (its informer then lists again). */
  gone?: Set<'services' | 'endpointslices'>;
}

export function fakeApiServer(state: FakeApiState): Promise<Server> {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://x');
    res.setHeader('content-type', 'application/json');
    state.requests = (state.requests ?? 0) + 1;
    if (!state.up) {
      res.writeHead(503);
      res.end(JSON.stringify({ kind: 'Status', code: 503, message: 'the API server is restarting' }));
      return;
    }
    const collection = url.pathname.endsWith('endpointslices') ? 'endpointslices' : 'services';
    if (url.searchParams.get('watch') === 'true' && state.gone?.delete(collection) === true) {
      res.writeHead(410);
      res.end(JSON.stringify({ kind: 'Status', code: 410, message: 'too old resource version' }));
      return;
    }
    if (url.searchParams.get('watch') === 'true') {
      res.writeHead(200);
      return; // held open until the client goes away
    }
    const items = collection === 'endpointslices' ? state.slices : state.services;
    res.end(JSON.stringify({ metadata: { resourceVersion: '7' }, items }));
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

/** A kubeconfig in `dir` for `server` (token auth, plain http); returns its path. */
export async function fakeApiKubeconfig(dir: string, server: Server): Promise<string> {
  const file = join(dir, 'kubeconfig.yaml');
  await writeFile(
    file,
    `clusters: [{ name: c, cluster: { server: "http://127.0.0.1:${(server.address() as AddressInfo).port}" } }]\n` +
      'users: [{ name: u, user: { token: t } }]\ncontexts: [{ name: x, context: { cluster: c, user: u } }]\ncurrent-context: x\n',
  );
  return file;
}

/** A Service labelled for fulcrum with one TCP port `http`. */
export function balancedService(namespace: string, name: string, annotations: Record<string, string> = {}): object {
  return {
    metadata: { name, namespace, resourceVersion: '5', labels: { 'fulcrum.io/balance': 'true' }, annotations },
    spec: { ports: [{ name: 'http', port: 80, protocol: 'TCP' }] },
  };
}

/** The Service's slices for `addresses` (ready), at most 1,000 endpoints per slice (the API's limit). */
export function readySlices(namespace: string, service: string, addresses: readonly string[], port = 8080): object[] {
  const out: object[] = [];
  for (let i = 0; i * 1000 < addresses.length; i++) {
    out.push({
      metadata: { name: `${service}-${i}`, namespace, resourceVersion: '6', labels: { 'kubernetes.io/service-name': service } },
      addressType: 'IPv4',
      endpoints: addresses.slice(i * 1000, (i + 1) * 1000).map((a) => ({ addresses: [a], conditions: { ready: true } })),
      ports: [{ name: 'http', port, protocol: 'TCP' }],
    });
  }
  return out;
}
