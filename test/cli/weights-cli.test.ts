import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, type CliDeps } from '../../src/cli/run.js';

/**
 * `fulcrum weights CLUSTER` prints what /v1/weights/{cluster} says proxies do: each endpoint's
 * share as the API reckons it (of the endpoints proxies route to), and the cluster's state.
 */
const VIEWS: Record<string, unknown> = {
  // One endpoint drained: proxies send it no new requests, so the healthy one takes it all.
  web: {
    cluster: 'web', computed: true, policy: 'static', failStatic: false,
    endpoints: [
      { endpoint: '10.0.0.1:80', staticWeight: 3, weight: 3, share: 0, health: 'DRAINING' },
      { endpoint: '10.0.0.2:80', staticWeight: 1, weight: 1, share: 100, health: 'HEALTHY' },
    ],
  },
  // Nothing routable: every endpoint is sent UNKNOWN.
  dark: {
    cluster: 'dark', computed: true, policy: 'static', failStatic: false, lastResort: 'ALL',
    endpoints: [
      { endpoint: '10.0.1.1:80', staticWeight: 1, weight: 1, share: 25, health: 'UNHEALTHY' },
      { endpoint: '10.0.1.2:80', staticWeight: 3, weight: 3, share: 75, health: 'TIMEOUT' },
    ],
  },
};

describe('fulcrum weights', () => {
  let server: Server;
  let url: string;
  beforeAll(async () => {
    server = createServer((req, res) => {
      const view = VIEWS[decodeURIComponent((req.url ?? '').replace('/v1/weights/', ''))];
      res.statusCode = view ? 200 : 404;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(view ?? { error: 'NOT_FOUND', message: 'no such cluster' }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => server.close());

  async function weights(cluster: string): Promise<{ code: number | 'keep-running'; rows: Map<string, string[]>; head: string }> {
    const out: string[] = [];
    const deps: CliDeps = { env: {}, write: (t) => void out.push(t), error: (t) => void out.push(t), serve: async () => undefined };
    const code = await runCli(['weights', cluster, '--server', url], deps);
    const lines = out.join('').split('\n');
    const rows = new Map(lines.slice(2).filter((l) => l.trim()).map((l) => { const cells = l.trim().split(/\s+/); return [cells[0] as string, cells]; }));
    return { code, rows, head: lines[0] ?? '' };
  }

  it('SHARE is the API\'s: a DRAINING endpoint takes none, the endpoints proxies route to share the rest', async () => {
    const { code, rows } = await weights('web');
    expect(code).toBe(0);
    expect(rows.get('10.0.0.1:80')?.[2]).toBe('0.0%');
    expect(rows.get('10.0.0.2:80')?.[2]).toBe('100.0%');
  });

  it('a cluster with nothing routable says which endpoints proxies are sent as UNKNOWN', async () => {
    const { head, rows } = await weights('dark');
    expect(head).toContain('NOTHING ROUTABLE');
    expect(head).toContain('every endpoint is sent to proxies as UNKNOWN');
    expect(rows.get('10.0.1.2:80')?.[2]).toBe('75.0%');
  });
});
