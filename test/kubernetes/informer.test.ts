/**
 * The list/watch informer against a scripted HTTP API server: what it asks for, how the cache
 * follows events, resuming from bookmarks, relisting on 410 Gone, the watchdog on a silent watch,
 * errors handed to the owner, and stop(). (test/kubernetes/apiserver.test.ts runs the same code
 * against a real kube-apiserver.)
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { KubeClient } from '../../src/sources/kubernetes/api-client.js';
import { Informer, type InformerOptions } from '../../src/sources/kubernetes/informer.js';
import { nodeAsCached, type NodeLike } from '../../src/sources/kubernetes/mapping.js';
import { waitFor } from '../support/wait.js';

type Handler = (url: URL, res: ServerResponse) => void;

/** Answers the n-th request with the n-th handler; records every request's URL. */
class ScriptedApi {
  readonly urls: URL[] = [];
  private readonly open = new Set<ServerResponse>();
  private server: Server | undefined;
  constructor(private readonly script: Handler[]) {}

  async listen(): Promise<string> {
    this.server = createServer((req: IncomingMessage, res: ServerResponse) => {
      const url = new URL(req.url ?? '/', 'http://x');
      this.urls.push(url);
      this.open.add(res);
      res.on('close', () => this.open.delete(res));
      const handler = this.script[this.urls.length - 1] ?? hold;
      handler(url, res);
    });
    const server = this.server;
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    for (const res of this.open) res.destroy();
    await new Promise((r) => this.server?.close(r));
  }
}

const obj = (name: string, rv: string, ns = 'shop') => ({ metadata: { name, namespace: ns, resourceVersion: rv } });
const list = (rv: string, ...items: object[]): Handler => (_u, res) => res.end(JSON.stringify({ metadata: { resourceVersion: rv }, items }));
/** A watch that sends these events, then ends (as at the server-side timeout) unless `keep`. */
const watch = (events: object[], keep = false): Handler => (_u, res) => {
  res.writeHead(200, { 'content-type': 'application/json' });
  for (const e of events) res.write(`${JSON.stringify(e)}\n`);
  if (!keep) res.end();
};
const hold: Handler = (_u, res) => res.writeHead(200, { 'content-type': 'application/json' }).flushHeaders();
const status = (code: number, message: string): Handler => (_u, res) => {
  res.writeHead(code, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ kind: 'Status', code, message }));
};

describe('Informer', () => {
  let api: ScriptedApi | undefined;
  let informer: Informer | undefined;
  let client: KubeClient | undefined;
  afterEach(async () => {
    informer?.stop();
    client?.close();
    await api?.close();
  });

  const run = async (script: Handler[], options: Partial<InformerOptions> = {}) => {
    informer?.stop();
    client?.close();
    await api?.close();
    api = new ScriptedApi(script);
    client = new KubeClient({ server: await api.listen() });
    const seen = { lists: [] as number[], changes: 0, errors: [] as unknown[] };
    informer = new Informer({
      client,
      kind: 'Service',
      path: '/api/v1/services',
      labelSelector: 'fulcrum.io/balance=true',
      listTimeoutMs: 5_000,
      watchTimeoutSeconds: 300,
      onList: (n) => seen.lists.push(n),
      onChange: () => seen.changes++,
      onError: (err) => seen.errors.push(err),
      ...options,
    });
    informer.start();
    return seen;
  };
  const names = (): string[] => (informer?.list() ?? []).map((o) => `${o.metadata?.namespace}/${o.metadata?.name}@${o.metadata?.resourceVersion}`).sort();

  it('lists, then watches from the list version with bookmarks and a jittered timeout; resumes from the last bookmark', async () => {
    await run([
      list('10', obj('a', '5'), obj('b', '6')),
      watch([
        { type: 'ADDED', object: obj('c', '11') },
        { type: 'MODIFIED', object: obj('a', '12') },
        { type: 'DELETED', object: obj('b', '13') },
        { type: 'BOOKMARK', object: { metadata: { resourceVersion: '20' } } },
      ]),
      hold,
    ]);
    await waitFor(() => api?.urls.length === 3, { what: 'list, watch, watch again' });
    const [listUrl, first, second] = api?.urls ?? [];
    expect(listUrl?.searchParams.get('watch')).toBeNull();
    expect(listUrl?.searchParams.get('labelSelector')).toBe('fulcrum.io/balance=true');
    expect(first?.searchParams.get('watch')).toBe('true');
    expect(first?.searchParams.get('resourceVersion')).toBe('10');
    expect(first?.searchParams.get('allowWatchBookmarks')).toBe('true');
    expect(first?.searchParams.get('labelSelector')).toBe('fulcrum.io/balance=true');
    const timeout = Number(first?.searchParams.get('timeoutSeconds'));
    expect(timeout).toBeGreaterThanOrEqual(300);
    expect(timeout).toBeLessThanOrEqual(330);
    expect(second?.searchParams.get('resourceVersion')).toBe('20'); // resumed, not relisted
    expect(names()).toEqual(['shop/a@12', 'shop/c@11']);
    expect(informer?.latestResourceVersion()).toBe('20');
  });

  it('caches objects without the API server\'s bookkeeping (managedFields, last-applied), keeping every other field', async () => {
    const annotations = { 'fulcrum.io/lb-policy': 'RING_HASH', 'kubectl.kubernetes.io/last-applied-configuration': '{"big":"copy"}' };
    const managedFields = [{ manager: 'kubectl', fieldsV1: { 'f:spec': {} } }];
    const full = (name: string) => ({ metadata: { name, namespace: 'shop', resourceVersion: '3', labels: { a: 'b' }, annotations, managedFields }, spec: { ports: [{ port: 80 }] } });
    await run([list('10', full('listed')), watch([{ type: 'ADDED', object: full('watched') }], true)]);
    await waitFor(() => informer?.list().length === 2, { what: 'both objects cached' });
    for (const o of informer?.list() ?? []) {
      expect(o).toEqual({ metadata: { name: o.metadata?.name, namespace: 'shop', resourceVersion: '3', labels: { a: 'b' }, annotations: { 'fulcrum.io/lb-policy': 'RING_HASH' } }, spec: { ports: [{ port: 80 }] } });
    }
  });

  it('caches what `cached` keeps of an object, listed or watched (Nodes: their name and topology labels)', async () => {
    const node = (name: string, zone = 'z1', rv = '3') => ({ metadata: { name, resourceVersion: rv, labels: { 'topology.kubernetes.io/zone': zone, 'kubernetes.io/os': 'linux' } }, status: { images: [{ names: ['x'], sizeBytes: Number(rv) }] } });
    const seen = await run(
      [
        list('10', node('listed')),
        watch(
          [
            { type: 'ADDED', object: node('watched') },
            // A status update: nothing cached changes, so no change is reported (no remap).
            { type: 'MODIFIED', object: node('listed', 'z1', '12') },
            { type: 'MODIFIED', object: node('watched', 'z2', '13') },
          ],
          true,
        ),
      ],
      { cached: (o) => nodeAsCached(o as NodeLike) },
    );
    await waitFor(() => informer?.latestResourceVersion() === '13', { what: 'every event applied' });
    expect(informer?.list()).toEqual([
      { metadata: { name: 'listed', labels: { 'topology.kubernetes.io/zone': 'z1' } } },
      { metadata: { name: 'watched', labels: { 'topology.kubernetes.io/zone': 'z2' } } },
    ]);
    expect(seen.changes).toBe(2);
  });

  it('410 Gone as an ERROR event, and as the watch answer: relists, and objects gone meanwhile leave the cache', async () => {
    const seen = await run([
      list('10', obj('a', '5'), obj('b', '6')),
      watch([{ type: 'ERROR', object: { kind: 'Status', code: 410, message: 'too old resource version' } }], true),
      list('30', obj('b', '25')),
      status(410, 'too old resource version'),
      list('40', obj('d', '35')),
      hold,
    ]);
    await waitFor(() => seen.lists.length === 3 && api?.urls.length === 6, { what: 'three lists, then a watch' });
    expect(api?.urls.map((u) => u.searchParams.get('watch') ?? 'list')).toEqual(['list', 'true', 'list', 'true', 'list', 'true']);
    expect(api?.urls[5]?.searchParams.get('resourceVersion')).toBe('40');
    expect(names()).toEqual(['shop/d@35']);
    expect(seen.errors).toEqual([]);
  });

  it('a silent watch is aborted by the watchdog and reported; start() again resumes from the version it had', async () => {
    const seen = await run([list('10', obj('a', '5')), hold, hold], { watchTimeoutSeconds: 1, watchdogGraceMs: 300 });
    await waitFor(() => seen.errors.length === 1, { what: 'the watchdog to fire', timeoutMs: 15_000 });
    expect(String(seen.errors[0])).toMatch(/watch Service: silent for 1[0-9]{3} ms/);
    informer?.start();
    await waitFor(() => api?.urls.length === 3, { what: 'the watch to be resumed' });
    expect(api?.urls[2]?.searchParams.get('resourceVersion')).toBe('10');
    expect(seen.lists).toEqual([1]);
  });

  it('an API error is reported with its status and message; other ERROR events too', async () => {
    const seen = await run([status(503, 'etcd unavailable')]);
    await waitFor(() => seen.errors.length === 1, { what: 'the list error' });
    expect(seen.errors[0]).toMatchObject({ statusCode: 503, message: 'GET /api/v1/services: etcd unavailable' });

    const again = await run([list('1'), watch([{ type: 'ERROR', object: { kind: 'Status', code: 500, message: 'internal' } }], true)]);
    await waitFor(() => again.errors.length === 1, { what: 'the ERROR event to be reported' });
    expect(again.errors[0]).toMatchObject({ statusCode: 500, message: 'watch Service: internal' });
  });

  it('a list that hangs gives up after listTimeoutMs', async () => {
    const seen = await run([hold], { listTimeoutMs: 300 });
    await waitFor(() => seen.errors.length === 1, { what: 'the list timeout' });
    expect(String(seen.errors[0])).toMatch(/list Service timed out after 300 ms/);
  });

  it('a watch the server ends at once with nothing sent is an error (backoff), not a tight loop', async () => {
    const seen = await run([list('1'), watch([])]);
    await waitFor(() => seen.errors.length === 1, { what: 'the empty watch to be reported' });
    expect(String(seen.errors[0])).toMatch(/ended at once without an event/);
    expect(api?.urls).toHaveLength(2);
  });

  it('stop() aborts the open watch; nothing is reported after it', async () => {
    const seen = await run([list('1', obj('a', '1')), hold]);
    await waitFor(() => api?.urls.length === 2, { what: 'the watch' });
    informer?.stop();
    await waitFor(async () => (await new Promise<number>((r) => setImmediate(() => r(api?.urls.length ?? 0)))) === 2, { what: 'no new request' });
    expect(seen.errors).toEqual([]);
    expect(seen.changes).toBe(0);
  });
});
