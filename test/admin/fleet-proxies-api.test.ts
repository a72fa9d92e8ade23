/**
 * /v1/proxies with several replicas: this replica's streams (live) and the others' (as they shared
 * them through etcd, faked here), each with the replica it is connected to.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { buildAdminApp } from '../../src/admin/app.js';
import type { Proxy } from '../../src/admin/schemas.js';
import { proxyView } from '../../src/admin/views.js';
import { Metrics } from '../../src/telemetry/metrics.js';
import { XdsCache } from '../../src/xds/cache.js';
import { TYPE } from '../../src/xds/envoy-api.js';
import { ProxyRegistry } from '../../src/xds/proxy-status.js';

function setup(remote: () => Proxy[] | undefined) {
  const registry = new ProxyRegistry(() => 1_700_000_000_000);
  const other = new ProxyRegistry(() => 1_700_000_000_000);
  const app = buildAdminApp({
    registry,
    cache: new XdsCache(),
    metrics: new Metrics({ processMetrics: false }),
    log: pino({ level: 'silent' }),
    ready: () => ({ ready: true, reasons: [] }),
    replica: 'fulcrum-0',
    ...(remote() !== undefined ? { fleet: { remote: () => remote() ?? [] } } : {}),
  });
  /** A stream on another replica, as that replica shares it (its own proxy view). */
  const elsewhere = (nodeId: string, replica: string): Proxy => {
    const r = other.connect(1, { id: nodeId, cluster: 'default', metadata: {}, userAgent: 'envoy' }, 'delta', 'ADS', 'ipv4:127.0.0.1:1');
    other.sent(r, TYPE.cluster, 'v', 'n', new Map(), 'state');
    other.acked(r, TYPE.cluster, 'n', 'v');
    return proxyView(r, replica);
  };
  const here = (nodeId: string) => registry.connect(2, { id: nodeId, cluster: 'default', metadata: {}, userAgent: 'envoy' }, 'sotw', 'ADS', 'ipv4:127.0.0.1:2');
  return { app, elsewhere, here };
}

const get = async (app: ReturnType<typeof setup>['app'], url: string) => {
  const res = await app.inject({ method: 'GET', url });
  return { status: res.statusCode, body: JSON.parse(res.body) as { count?: number; proxies?: Proxy[]; streams?: Proxy[] } };
};

describe('/v1/proxies across replicas', () => {
  it('lists this replica\'s streams and the other replicas\', each with its replica, ordered by node', async () => {
    let shared: Proxy[] = [];
    const s = setup(() => shared);
    s.here('envoy-b');
    shared = [s.elsewhere('envoy-c', 'fulcrum-2'), s.elsewhere('envoy-a', 'fulcrum-1')];
    const { status, body } = await get(s.app, '/v1/proxies');
    expect(status).toBe(200);
    expect(body.count).toBe(3);
    expect(body.proxies?.map((p) => [p.nodeId, p.replica, p.protocol])).toEqual([
      ['envoy-a', 'fulcrum-1', 'delta'],
      ['envoy-b', 'fulcrum-0', 'sotw'],
      ['envoy-c', 'fulcrum-2', 'delta'],
    ]);
    expect(body.proxies?.[0]?.types.CDS.state).toBe('SYNCED');
  });

  it('finds one node on whichever replica it is, and 404s a node no replica has', async () => {
    let shared: Proxy[] = [];
    const s = setup(() => shared);
    shared = [s.elsewhere('envoy-a', 'fulcrum-1')];
    const found = await get(s.app, '/v1/proxies/envoy-a');
    expect(found.status).toBe(200);
    expect(found.body.streams?.map((p) => p.replica)).toEqual(['fulcrum-1']);
    expect((await get(s.app, '/v1/proxies/nobody')).status).toBe(404);
  });

  it('alone (SQLite), shows its replica name on every stream and nothing else changes', async () => {
    const s = setup(() => undefined);
    s.here('envoy-b');
    const { body } = await get(s.app, '/v1/proxies');
    expect(body.proxies?.map((p) => [p.nodeId, p.replica])).toEqual([['envoy-b', 'fulcrum-0']]);
  });
});
