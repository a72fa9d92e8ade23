/**
 * /v1/proxies with several replicas: this replica's streams (live) and the others' (as they shared
 * them through etcd, faked here), each with the replica it is connected to.
 */
import { pino } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import fastJson from 'fast-json-stringify';
import { buildAdminApp } from '../../src/admin/app.js';
import { ProxyList } from '../../src/admin/routes/proxies.js';
import { serializerSchema } from '../../src/admin/serializer-schema.js';
import type { Proxy } from '../../src/admin/schemas.js';
import { proxyView, sharedProxyViews } from '../../src/admin/views.js';
import { sameShape } from '../../src/xds/fleet-proxies.js';
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
  const here = (nodeId: string, streamId = 2) => registry.connect(streamId, { id: nodeId, cluster: 'default', metadata: {}, userAgent: 'envoy' }, 'sotw', 'ADS', 'ipv4:127.0.0.1:2');
  /** A NACK of a CDS response on a stream of this replica. */
  const nack = (r: ReturnType<typeof here>): void => {
    registry.sent(r, TYPE.cluster, 'v2', 'n2', new Map(), 'state');
    registry.nacked(r, TYPE.cluster, { nonce: 'n2', version: 'v2', keptVersion: '', message: 'refused' });
  };
  return { app, elsewhere, here, nack };
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

  it('past 1,000 streams lists them in slices: the whole serializer\'s bytes, in the listing order', async () => {
    let shared: Proxy[] = [];
    const s = setup(() => shared);
    const names = Array.from({ length: 1_500 }, (_, i) => `envoy-${String(1_499 - i).padStart(4, '0')}`);
    names.forEach((name, i) => s.here(name, 10 + i));
    s.here('envoy-0007', 5_000); // a second stream of one node: after its first (same time, higher stream id)
    shared = [s.elsewhere('envoy-0500', 'fulcrum-1'), s.elsewhere('envoy-9999', 'fulcrum-2')];
    const turnsOf = async (url: string) => {
      const spy = vi.spyOn(globalThis, 'setImmediate');
      const answer = await s.app.inject({ method: 'GET', url });
      const turns = spy.mock.calls.length;
      spy.mockRestore();
      return { res: answer, turns };
    };
    // 10,000 streams held every request for 140-400 ms in one task: now a turn per 1,000 more
    // than a one-node answer takes.
    const one = await turnsOf('/v1/proxies/envoy-0007');
    const { res, turns } = await turnsOf('/v1/proxies');
    expect(res.statusCode).toBe(200);
    expect(turns).toBeGreaterThan(one.turns);
    const body = JSON.parse(res.body) as { count: number; proxies: Proxy[] };
    expect(body.count).toBe(1_503);
    expect(res.body).toBe(fastJson(serializerSchema(ProxyList))(body));
    const listed = body.proxies.map((p) => `${p.nodeId}@${p.replica}#${p.streamId}`);
    expect(listed.slice(0, 2)).toEqual(['envoy-0000@fulcrum-0#1509', 'envoy-0001@fulcrum-0#1508']);
    expect(listed.filter((x) => x.startsWith('envoy-0007@'))).toEqual(['envoy-0007@fulcrum-0#1502', 'envoy-0007@fulcrum-0#5000']);
    expect(listed.filter((x) => x.startsWith('envoy-0500@'))).toEqual(['envoy-0500@fulcrum-0#1009', 'envoy-0500@fulcrum-1#1']);
    expect(listed.at(-1)).toBe('envoy-9999@fulcrum-2#1');
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

  it('narrows the list to the streams in an overall sync state, and to the first `limit`, still counting every match', async () => {
    let shared: Proxy[] = [];
    const s = setup(() => shared);
    s.nack(s.here('envoy-c', 3));
    s.here('envoy-a', 4);
    const d = s.elsewhere('envoy-d', 'fulcrum-2');
    shared = [s.elsewhere('envoy-b', 'fulcrum-1'), { ...d, types: { ...d.types, EDS: { state: 'NACKED', resources: 0, responses: 1, nacks: 1 } } }];
    const nacked = await get(s.app, '/v1/proxies?state=NACKED');
    expect(nacked.status).toBe(200);
    expect(nacked.body.proxies?.map((p) => p.nodeId)).toEqual(['envoy-c', 'envoy-d']);
    expect(nacked.body.count).toBe(2);
    // A stream's worst type decides, as fulcrum_proxies counts it: envoy-d (CDS SYNCED, EDS NACKED)
    // is NACKED, envoy-b (CDS SYNCED, nothing else sent) SYNCED, envoy-a (nothing sent) NOT_SENT.
    expect((await get(s.app, '/v1/proxies?state=NOT_SENT')).body.proxies?.map((p) => p.nodeId)).toEqual(['envoy-a']);
    expect((await get(s.app, '/v1/proxies?state=SYNCED')).body.proxies?.map((p) => p.nodeId)).toEqual(['envoy-b']);
    expect((await get(s.app, '/v1/proxies?state=STALE')).body.count).toBe(0);
    const first = await get(s.app, '/v1/proxies?limit=2');
    expect(first.body.proxies?.map((p) => p.nodeId)).toEqual(['envoy-a', 'envoy-b']);
    expect(first.body.count).toBe(4);
    const oneNacked = await get(s.app, '/v1/proxies?state=NACKED&limit=1');
    expect([oneNacked.body.count, oneNacked.body.proxies?.map((p) => p.nodeId)]).toEqual([2, ['envoy-c']]);
    for (const bad of ['?state=BROKEN', '?limit=0', '?limit=x', '?other=1']) expect((await get(s.app, `/v1/proxies${bad}`)).status, bad).toBe(400);
  });

  it('shares a stream\'s node metadata with the other replicas only up to 1 KiB; the replica it is on shows it whole', () => {
    const registry = new ProxyRegistry(() => 1_700_000_000_000);
    const small = { zone: 'z1' };
    const big = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`ISTIO_META_${i}`, 'x'.repeat(60)]));
    registry.connect(1, { id: 'small', cluster: 'default', metadata: small, userAgent: 'envoy' }, 'sotw', 'ADS', 'p');
    const r = registry.connect(2, { id: 'big', cluster: 'default', metadata: big, userAgent: 'envoy' }, 'sotw', 'ADS', 'p');
    const [one, two] = sharedProxyViews(registry.list(), 'fulcrum-0', 10).proxies();
    expect([one?.metadata, one?.metadataOmitted]).toEqual([small, undefined]);
    expect([two?.metadata, two?.metadataOmitted]).toEqual([{}, true]);
    expect(proxyView(r, 'fulcrum-0').metadata).toEqual(big);
  });

  it('shares a replica\'s NACKED streams first, then those awaiting an ACK, so a bounded share keeps them', () => {
    const registry = new ProxyRegistry(() => 1_700_000_000_000);
    const stream = (id: string, n: number) => registry.connect(n, { id, cluster: 'default', metadata: {}, userAgent: 'envoy' }, 'sotw', 'ADS', 'ipv4:127.0.0.1:2');
    const synced = stream('synced', 1);
    registry.sent(synced, TYPE.cluster, 'v', 'n', new Map(), 'state');
    registry.acked(synced, TYPE.cluster, 'n', 'v');
    stream('nothing', 2);
    const stale = stream('stale', 3);
    registry.sent(stale, TYPE.cluster, 'v', 'n', new Map(), 'state');
    const nacked = stream('nacked', 4);
    registry.sent(nacked, TYPE.cluster, 'v', 'n', new Map(), 'state');
    registry.nacked(nacked, TYPE.cluster, { nonce: 'n', version: 'v', keptVersion: '', message: 'refused' });
    const shared = sharedProxyViews(registry.list(), 'fulcrum-0', 10);
    expect(shared.total).toBe(4);
    expect(shared.proxies().map((p) => p.nodeId)).toEqual(['nacked', 'stale', 'synced', 'nothing']);
    expect(shared.proxies()[0]).toEqual(proxyView(nacked, 'fulcrum-0'));
    // Bounded, the troubled ones stay.
    const bounded = sharedProxyViews(registry.list(), 'fulcrum-0', 2);
    expect([bounded.total, bounded.proxies()]).toEqual([4, [proxyView(nacked, 'fulcrum-0'), proxyView(stale, 'fulcrum-0')]]);
  });

  it('past `max` streams, pushes in flight change neither which streams are shared nor their shape', () => {
    let now = 1_700_000_000_000;
    const registry = new ProxyRegistry(() => now);
    const streams = Array.from({ length: 5 }, (_, n) => registry.connect(n, { id: `n${n}`, cluster: 'default', metadata: {}, userAgent: 'envoy' }, 'sotw', 'ADS', 'p'));
    for (const r of streams) {
      registry.sent(r, TYPE.cluster, 'v1', 'a', new Map(), 'state');
      registry.acked(r, TYPE.cluster, 'a', 'v1');
    }
    const before = sharedProxyViews(registry.list(), 'x', 2, now);
    now += 1_000;
    // The last streams get the next push first: in flight, they must not take the first ones' places.
    for (const r of streams.slice(3)) registry.sent(r, TYPE.cluster, 'v2', 'b', new Map(), 'state');
    const during = sharedProxyViews(registry.list(), 'x', 2, now);
    expect([...during.shape.keys()]).toEqual([...before.shape.keys()]);
    expect(sameShape(before.shape, during.shape)).toBe(true);
    // Awaiting the ACK for 2 s is news: those streams are shared first.
    now += 2_000;
    expect([...sharedProxyViews(registry.list(), 'x', 2, now).shape.keys()]).toEqual(['3', '4']);
  });

  it('gives the shape of the shared streams: which ones, in which states, a push in flight not yet news', () => {
    let now = 1_700_000_000_000;
    const registry = new ProxyRegistry(() => now);
    const r = registry.connect(7, { id: 'n', cluster: 'default', metadata: {}, userAgent: 'envoy' }, 'sotw', 'ADS', 'p');
    registry.sent(r, TYPE.cluster, 'v1', 'a', new Map(), 'state');
    registry.acked(r, TYPE.cluster, 'a', 'v1');
    const shape = (): ReadonlyMap<string, string> => sharedProxyViews(registry.list(), 'x', 10, now).shape;
    const synced = shape();
    // Only versions and times move with a push, in flight or ACKed: the same shape.
    now += 5_000;
    registry.sent(r, TYPE.cluster, 'v2', 'b', new Map(), 'state');
    expect(sameShape(synced, shape())).toBe(true);
    registry.acked(r, TYPE.cluster, 'b', 'v2');
    expect(shape()).toEqual(synced);
    // Awaiting an ACK for two seconds is news; so is a NACK, and another stream.
    registry.sent(r, TYPE.cluster, 'v3', 'c', new Map(), 'state');
    now += 2_000;
    const stale = shape();
    expect(sameShape(synced, stale)).toBe(false);
    registry.nacked(r, TYPE.cluster, { nonce: 'c', version: 'v3', keptVersion: 'v2', message: 'no' });
    const nacked = shape();
    expect([sameShape(synced, nacked), sameShape(stale, nacked)]).toEqual([false, false]);
    registry.connect(8, { id: 'm', cluster: 'default', metadata: {}, userAgent: 'envoy' }, 'sotw', 'ADS', 'p');
    expect(sameShape(nacked, shape())).toBe(false);
  });

  it('moves the registry\'s version with every change a shared view shows, so a standing version means nothing to share', () => {
    let now = 1_000;
    const reg = new ProxyRegistry(() => now++);
    const share = (): string => JSON.stringify(sharedProxyViews(reg.list(), 'r', 2_000).proxies());
    const node = { id: 'n', cluster: 'c', metadata: {}, userAgent: 'envoy' };
    let r = reg.connect(1, node, 'delta', 'ADS', 'p');
    const steps: [string, () => void][] = [
      ['connect', () => void (r = reg.connect(2, node, 'delta', 'ADS', 'p'))],
      ['sent state', () => reg.sent(r, TYPE.cluster, 'v1', 'a', new Map([['x', '1'], ['y', '1']]), 'state')],
      ['sent merge', () => reg.sent(r, TYPE.cluster, 'v2', 'b', new Map([['z', '1']]), 'merge')],
      ['removed', () => reg.removed(r, TYPE.cluster, ['z'])],
      ['nacked', () => reg.nacked(r, TYPE.cluster, { nonce: 'b', version: 'v2', keptVersion: 'v1', message: 'm' }, { carried: new Map([['x', '1'], ['y', '1']]), refused: new Map([['y', '1']]) })],
      ['acked', () => reg.acked(r, TYPE.cluster, 'b', 'v2', new Map([['y', '1']]))],
      ['resumed', () => reg.resumed(r, TYPE.endpoint, 'e', new Map([['x', '1']]))],
      ['disconnect', () => reg.disconnect(2)],
    ];
    for (const [name, step] of steps) {
      const [version, shared] = [reg.version, share()];
      step();
      expect(reg.version, name).toBeGreaterThan(version);
      expect(share(), name).not.toBe(shared);
    }
  });
});
