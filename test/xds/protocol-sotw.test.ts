/**
 * State-of-the-World xDS protocol conversations, scripted with a raw gRPC client against an
 * in-process fulcrum on loopback. Each test proves one of DESIGN.md's "xDS protocol rules that bite".
 * Rules SotW shares with Delta are in protocol-shared.test.ts.
 */
import { describe, expect, test } from 'vitest';
import { waitFor } from '../support/wait.js';
import { syncState } from '../../src/xds/proxy-status.js';
import {
  ADS, CDS, codeName, decodeResources, EDS, encodeDiscoveryRequest, LDS, namesOf, RDS, SERVICE, SHORT,
  type DiscoveryResponse, type SotwStream, type XdsClient,
} from '../support/xds-client.js';
import { baseConfig, edit, harnessPerTest, NODE, withCluster, type ConfigDoc } from './protocol-fixture.js';

const start = harnessPerTest();

/** Opens ADS and subscribes the first type with the node attached. */
function ads(client: XdsClient, type: string, names: string[], node: object = NODE): SotwStream {
  const s = client.sotw(ADS);
  s.request(type, names, { node });
  return s;
}

function clusterOf(resp: DiscoveryResponse, name: string): Record<string, unknown> {
  const r = decodeResources(resp).find((x) => x.name === name);
  if (!r) throw new Error(`${name} not in ${SHORT[resp.type_url]} response (${namesOf(resp).join(',')})`);
  return r.message;
}

function endpointPorts(resp: DiscoveryResponse, cluster: string): number[] {
  const cla = clusterOf(resp, cluster) as { endpoints: { lb_endpoints: { endpoint: { address: { socket_address: { port_value: number } } } }[] }[] };
  return cla.endpoints.flatMap((l) => l.lb_endpoints.map((e) => e.endpoint.address.socket_address.port_value));
}

describe('nonces and ACK', () => {
  test('nonces are per type on ADS: ACKing an older CDS nonce after an EDS response still counts', async () => {
    const { client, proxy } = await start();
    const s = ads(client, CDS, []);
    const cds = await s.nextOf(CDS);
    s.request(EDS, ['web', 'api']);
    const eds = await s.nextOf(EDS);
    expect(cds.nonce).not.toBe('');
    expect(eds.nonce).not.toBe(cds.nonce);

    // The CDS ACK carries the CDS nonce, which is older than the stream's newest (EDS) nonce.
    s.ack(cds);
    s.ack(eds);
    await waitFor(async () => {
      const p = await proxy();
      return p.types.CDS?.state === 'SYNCED' && p.types.EDS?.state === 'SYNCED';
    }, { what: 'CDS and EDS to be SYNCED', timeoutMs: 3_000, intervalMs: 10 });
    const p = await proxy();
    expect(p.types.CDS).toMatchObject({ state: 'SYNCED', sentVersion: cds.version_info, ackedVersion: cds.version_info });
    expect(p.types.EDS).toMatchObject({ state: 'SYNCED', ackedVersion: eds.version_info });
    // ACKs are not answered.
    await s.expectNone(150);
  });

  test('an ACK shows as SYNCED in CSDS, a response not yet ACKed as REQUESTED', async () => {
    const { client } = await start();
    const s = ads(client, CDS, []);
    const cds = await s.nextOf(CDS);
    const before = await client.clientStatus(NODE.id);
    expect(before.config).toHaveLength(1);
    const pending = before.config[0]!.generic_xds_configs.filter((g) => g.type_url === CDS);
    expect(pending.map((g) => g.name).sort()).toEqual(['api', 'web']);
    expect(pending.every((g) => g.config_status === 'STALE' && g.client_status === 'REQUESTED')).toBe(true);

    s.ack(cds);
    const after = await waitFor(async () => {
      const r = await client.clientStatus(NODE.id);
      const g = r.config[0]?.generic_xds_configs.filter((x) => x.type_url === CDS) ?? [];
      return g.length === 2 && g.every((x) => x.config_status === 'SYNCED') ? g : undefined;
    }, { what: 'CSDS to report CDS SYNCED', timeoutMs: 3_000, intervalMs: 10 });
    expect(after.every((g) => g.client_status === 'ACKED' && g.error_state === null)).toBe(true);
    // csds.proto: version_info is the last response's, as the proxy's own config dump shows it (not a per-resource hash).
    expect(after.map((g) => g.version_info)).toEqual([cds.version_info, cds.version_info]);
  });
});

describe('NACK', () => {
  test('a NACK is recorded (registry and CSDS), is not answered with the same content, and a later change is sent', async () => {
    const { client, proxy, apply } = await start();
    const s = ads(client, CDS, []);
    const cds = await s.nextOf(CDS);
    s.nack(cds, 'cluster web: bad lb policy');

    // No resend loop: the rejected content is parked.
    await s.expectNone(250, (r) => r.type_url === CDS);

    const p = await waitFor(async () => {
      const x = await proxy();
      return x.types.CDS?.state === 'NACKED' ? x : undefined;
    }, { what: 'CDS to be NACKED in the registry', timeoutMs: 3_000, intervalMs: 10 });
    expect(p.types.CDS!.lastNack?.message).toBe('cluster web: bad lb policy');

    expect(p.types.CDS!.rejected).toEqual(['web']);
    // CSDS per resource: the NACK named web; the client took the rest of the response.
    const csds = await client.clientStatus(NODE.id);
    const configs = csds.config[0]!.generic_xds_configs.filter((g) => g.type_url === CDS).sort((a, b) => a.name.localeCompare(b.name));
    expect(configs.map((g) => [g.name, g.config_status, g.client_status])).toEqual([
      ['api', 'SYNCED', 'ACKED'],
      ['web', 'ERROR', 'NACKED'],
    ]);
    expect(configs[0]!.error_state ?? undefined).toBeUndefined();
    expect(configs[1]!.error_state?.details).toBe('cluster web: bad lb policy');
    expect(configs[1]!.error_state?.version_info).toBe(cds.version_info);

    // Still parked after a second, identical NACK-state request (e.g. the client re-sends its state).
    s.request(CDS, [], { response_nonce: cds.nonce, error_detail: { code: 3, message: 'cluster web: bad lb policy' } });
    await s.expectNone(150, (r) => r.type_url === CDS);

    // The content changes: it is sent.
    await apply(edit(baseConfig(), (d) => (d.clusters![1]!.lbPolicy = 'RANDOM')));
    const next = await s.nextOf(CDS);
    expect(next.version_info).not.toBe(cds.version_info);
    expect(JSON.stringify(clusterOf(next, 'web').load_balancing_policy)).toContain('envoy.load_balancing_policies.random');
    s.ack(next);
    await waitFor(async () => (await proxy()).types.CDS?.state === 'SYNCED', { what: 'CDS SYNCED after the fix', timeoutMs: 3_000, intervalMs: 10 });
  });

  // A NACK that names no resource refuses all the response carried; the client dropping the
  // culprit (its listener deleted) was sent nothing for the rest, which stayed NACKED for good.
  test('a client that drops a refused route is answered with what it holds, and is SYNCED again', async () => {
    const { client, proxy } = await start(withCluster(baseConfig(), 'extra', { name: 'ingress2', port: 10001 }));
    const s = ads(client, RDS, ['ingress', 'ingress2']);
    const rds = await s.nextOf(RDS);
    s.nack(rds, 'Unable to unpack as envoy.config.route.v3.RouteConfiguration');
    await waitFor(async () => (await proxy()).types.RDS?.state === 'NACKED', { what: 'RDS NACKED', timeoutMs: 3_000, intervalMs: 10 });
    expect((await proxy()).types.RDS?.rejected).toEqual(['ingress', 'ingress2']);
    // Still refusing what it holds: no answer (no resend loop).
    await s.expectNone(200);
    s.request(RDS, ['ingress'], { response_nonce: rds.nonce });
    const again = await s.nextOf(RDS);
    expect(namesOf(again)).toEqual(['ingress']);
    s.ack(again);
    await waitFor(async () => (await proxy()).types.RDS?.state === 'SYNCED', { what: 'RDS SYNCED again', timeoutMs: 3_000, intervalMs: 10 });
    expect((await proxy()).types.RDS?.rejected).toBeUndefined();
  });

  test('an EDS NACK is not answered with the same endpoints; new endpoints are sent', async () => {
    const { client, proxy, apply } = await start();
    const s = ads(client, EDS, ['web']);
    const eds = await s.nextOf(EDS);
    s.nack(eds, 'bad endpoint');
    await s.expectNone(200);
    expect((await proxy()).types.EDS).toMatchObject({ state: 'NACKED', lastNack: { message: 'bad endpoint' } });

    await apply(edit(baseConfig(), (d) => (d.clusters![1]!.endpoints = [{ address: '10.0.0.1', port: 8081 }])));
    const next = await s.nextOf(EDS);
    expect(endpointPorts(next, 'web')).toEqual([8081]);
  });
});

describe('stale and garbage nonces', () => {
  test('a request carrying a stale nonce is ignored, even if it changes the subscription', async () => {
    const { client, apply } = await start();
    const s = ads(client, EDS, ['web']);
    const first = await s.nextOf(EDS);
    s.ack(first);
    await apply(edit(baseConfig(), (d) => (d.clusters![1]!.endpoints = [{ address: '10.0.0.1', port: 8081 }])));
    const pushed = await s.nextOf(EDS);
    expect(pushed.nonce).not.toBe(first.nonce);

    // The client had not yet seen `pushed` when it sent this: stale nonce.
    s.request(EDS, ['web', 'api'], { response_nonce: first.nonce });
    await s.expectNone(200);

    // The same request with the current nonce is answered (EDS may carry just the new name).
    s.request(EDS, ['web', 'api'], { response_nonce: pushed.nonce });
    expect(namesOf(await s.nextOf(EDS))).toContain('api');
  });

  test('a garbage nonce is ignored and the stream keeps working', async () => {
    const { client, proxy } = await start();
    const s = ads(client, CDS, []);
    const cds = await s.nextOf(CDS);
    s.request(CDS, ['web'], { response_nonce: 'no-such-nonce-\u00e9\u2603' });
    await s.expectNone(200);
    expect(s.ended).toBeUndefined();
    expect((await proxy()).types.CDS?.state).toBe('STALE');
    s.ack(cds, { resource_names: [] });
    await waitFor(async () => (await proxy()).types.CDS?.state === 'SYNCED', { what: 'CDS SYNCED', timeoutMs: 3_000, intervalMs: 10 });
  });
});

describe('what responses carry', () => {
  test('CDS carries the full set, and a removed cluster is absent from the next CDS response', async () => {
    const { client, apply } = await start();
    const s = ads(client, CDS, []);
    const cds = await s.nextOf(CDS);
    expect(namesOf(cds)).toEqual(['api', 'web']);
    s.ack(cds);
    await apply(edit(baseConfig(), (d) => {
      d.clusters = d.clusters!.filter((c) => c.name !== 'api');
      d.listeners![0]!.routes = [{ prefix: '/', cluster: 'web' }];
    }));
    const next = await s.nextOf(CDS);
    expect(namesOf(next)).toEqual(['web']);
  });

  // Make-before-break keeps a removed cluster in a first CDS response and drops it in a second;
  // the second warms nothing, so Envoy's next EDS request (without the cluster) is not answered
  // with every assignment again: with 10,000 clusters, each removal resent all of them.
  test.each([
    ['a cluster', CDS, EDS],
    ['a listener', LDS, RDS],
  ])('removing %s resends nothing unchanged of the dependent type', async (_what, parent, child) => {
    const { client, apply } = await start(withCluster(baseConfig(), 'extra', { name: 'ingress2', port: 10001 }));
    const s = ads(client, CDS, []);
    s.ack(await s.nextOf(CDS));
    s.request(EDS, ['api', 'extra', 'web']);
    s.ack(await s.nextOf(EDS));
    s.request(LDS, []);
    s.ack(await s.nextOf(LDS));
    s.request(RDS, ['ingress', 'ingress2']);
    s.ack(await s.nextOf(RDS));
    await s.expectNone(200);
    await apply(baseConfig());
    // The push, ACKed as it comes, until the parent type's last response has dropped the removed resource and the stream is quiet.
    const gone = parent === CDS ? 'extra' : 'ingress2';
    const push: string[] = [];
    let dropped = false;
    for (let r = await s.next(); ; ) {
      s.ack(r);
      push.push(`${SHORT[r.type_url]}:${namesOf(r).join(',')}`);
      if (r.type_url === parent) dropped = !namesOf(r).includes(gone);
      const more = await s.next(() => true, 300).catch(() => undefined);
      if (more === undefined && dropped) break;
      if (more === undefined) throw new Error(`the push ended before ${gone} was dropped: ${push.join(' ')}`);
      r = more;
    }
    // Envoy dropped it: its request for the dependent type shrinks. Nothing it holds changed.
    s.request(child, child === EDS ? ['api', 'web'] : ['ingress']);
    await s.expectNone(300);
  });

  test('LDS carries the full set: an added listener comes with the existing one; a removed one disappears', async () => {
    const { client, apply } = await start();
    const s = ads(client, LDS, []);
    const lds = await s.nextOf(LDS);
    expect(namesOf(lds)).toEqual(['ingress']);
    s.ack(lds);
    const two = withCluster(baseConfig(), 'extra', { name: 'ingress2', port: 10001 });
    await apply(two);
    const added = await s.nextOf(LDS);
    expect(namesOf(added)).toEqual(['ingress', 'ingress2']);
    s.ack(added);
    await apply(baseConfig());
    const removed = await s.nextOf(LDS);
    expect(namesOf(removed)).toEqual(['ingress']);
  });

  test('EDS and RDS carry only the requested names', async () => {
    const { client } = await start(withCluster(baseConfig(), 'extra', { name: 'ingress2', port: 10001 }));
    const s = ads(client, EDS, ['web']);
    const eds = await s.nextOf(EDS);
    expect(namesOf(eds)).toEqual(['web']);
    expect(endpointPorts(eds, 'web')).toEqual([8080]);
    s.request(RDS, ['ingress2']);
    const rds = await s.nextOf(RDS);
    expect(namesOf(rds)).toEqual(['ingress2']);
  });

  test('a change to a resource the client did not ask for is not pushed', async () => {
    const { client, apply } = await start();
    const s = ads(client, EDS, ['web']);
    s.ack(await s.nextOf(EDS));
    await apply(edit(baseConfig(), (d) => (d.clusters![0]!.endpoints = [{ address: '10.0.0.2', port: 9999 }])));
    await s.expectNone(200);
  });

  test('an RDS name that does not exist yet is answered once the listener appears', async () => {
    const { client, apply } = await start();
    const s = ads(client, RDS, ['ingress', 'ingress2']);
    const first = await s.nextOf(RDS);
    expect(namesOf(first)).toEqual(['ingress']);
    s.ack(first);
    await apply(withCluster(baseConfig(), 'extra', { name: 'ingress2', port: 10001 }));
    const next = await s.nextOf(RDS);
    // RDS need not repeat the unchanged `ingress`; it must bring `ingress2`, and nothing unrequested.
    expect(namesOf(next)).toContain('ingress2');
    expect(namesOf(next).every((n) => n === 'ingress' || n === 'ingress2')).toBe(true);
  });
});

describe('subscriptions', () => {
  test('"*" subscribes CDS and LDS to everything', async () => {
    const { client, apply } = await start();
    const s = ads(client, CDS, ['*']);
    const cds = await s.nextOf(CDS);
    expect(namesOf(cds)).toEqual(['api', 'web']);
    s.ack(cds);
    s.request(LDS, ['*']);
    const lds = await s.nextOf(LDS);
    expect(namesOf(lds)).toEqual(['ingress']);
    s.ack(lds);
    // Still wildcard after the ACKs: a new cluster is pushed.
    await apply(withCluster(baseConfig(), 'ghost'));
    expect(namesOf(await s.nextOf(CDS))).toEqual(['api', 'ghost', 'web']);
  });

  test('"*" together with explicit names is still wildcard', async () => {
    const { client } = await start();
    const s = ads(client, CDS, ['*', 'web']);
    expect(namesOf(await s.nextOf(CDS))).toEqual(['api', 'web']);
  });

  test('an empty first CDS/LDS request is a (legacy) wildcard, and stays one on ACK', async () => {
    const { client, apply } = await start();
    const s = ads(client, CDS, []);
    const cds = await s.nextOf(CDS);
    expect(namesOf(cds)).toEqual(['api', 'web']);
    s.ack(cds); // resource_names: [] again
    s.request(LDS, []);
    const lds = await s.nextOf(LDS);
    expect(namesOf(lds)).toEqual(['ingress']);
    s.ack(lds);
    await apply(withCluster(baseConfig(), 'ghost', { name: 'ingress2', port: 10001 }));
    expect(namesOf(await s.nextOf(CDS))).toEqual(['api', 'ghost', 'web']);
    expect(namesOf(await s.nextOf(LDS))).toEqual(['ingress', 'ingress2']);
  });

  test('an empty EDS list after a non-empty one unsubscribes: later endpoint changes are not sent', async () => {
    const { client, apply } = await start();
    const s = ads(client, EDS, ['web']);
    const first = await s.nextOf(EDS);
    s.ack(first);
    s.request(EDS, [], { response_nonce: first.nonce, version_info: first.version_info });
    await s.expectNone(150);
    await apply(edit(baseConfig(), (d) => (d.clusters![1]!.endpoints = [{ address: '10.0.0.1', port: 8081 }])));
    await s.expectNone(200);
    // Control: a subscribed stream does get the same change.
    const other = ads(client, EDS, ['web'], { ...NODE, id: 'node-2' });
    expect(endpointPorts(await other.nextOf(EDS), 'web')).toEqual([8081]);
  });
});

describe('reconnect', () => {
  test('a new stream announcing the versions it holds is sent no CDS (a wildcard); one without versions gets the full state', async () => {
    const { client, records } = await start();
    const s1 = ads(client, CDS, []);
    const cds1 = await s1.nextOf(CDS);
    s1.ack(cds1);
    s1.request(EDS, ['web']);
    const eds1 = await s1.nextOf(EDS);
    s1.ack(eds1);
    s1.cancel();
    await waitFor(() => records().length === 0, { what: 'the first stream to be forgotten', timeoutMs: 3_000, intervalMs: 10 });

    // Envoy reconnects with the versions it holds: versions are content hashes, so a wildcard's
    // still names exactly what it has, and no CDS is resent. An EDS list's version does not say
    // which names the client still holds (the next test): its request is answered.
    const s2 = client.sotw();
    s2.request(CDS, [], { node: NODE, version_info: cds1.version_info });
    s2.request(EDS, ['web'], { version_info: eds1.version_info });
    const eds2 = await s2.nextOf(EDS);
    expect(namesOf(eds2)).toEqual(['web']);
    expect(eds2.version_info).toBe(eds1.version_info);
    const held = records().find((r) => r.node.id === NODE.id);
    expect(syncState(held?.types.get(CDS))).toBe('SYNCED');
    expect(held?.types.get(CDS)?.responses).toBe(0);

    // A client that holds nothing (a restarted Envoy) gets everything.
    const s3 = client.sotw();
    s3.request(CDS, [], { node: { ...NODE, id: 'other' } });
    const cds3 = await s3.nextOf(CDS);
    expect(namesOf(cds3)).toEqual(['api', 'web']);
    expect(cds3.version_info).toBe(cds1.version_info);
    s3.request(EDS, ['web']);
    expect(namesOf(await s3.nextOf(EDS))).toEqual(['web']);
    expect(records()).toHaveLength(2);
  });

  // A client that drops a name is sent nothing (nothing it holds changed), so the version it
  // announces next still names the larger list; asking for the name again on a new stream (the
  // cluster or listener back after a restart or failover), it must be sent it.
  test.each([
    ['EDS', EDS, ['api', 'web'], ['web']],
    ['RDS', RDS, ['ingress'], []],
  ])('%s: a name dropped and asked for again on a new stream at the old version is sent', async (_what, type, names, fewer) => {
    const { client, records } = await start();
    const s1 = ads(client, type, names);
    const first = await s1.nextOf(type);
    expect(namesOf(first)).toEqual(names);
    s1.ack(first);
    s1.request(type, fewer, { response_nonce: first.nonce, version_info: first.version_info });
    await s1.expectNone(200);
    s1.cancel();
    await waitFor(() => records().length === 0, { what: 'the first stream to be forgotten', timeoutMs: 3_000, intervalMs: 10 });
    const s2 = client.sotw(ADS);
    s2.request(type, names, { node: NODE, version_info: first.version_info });
    expect(namesOf(await s2.nextOf(type))).toEqual(names);
  });

  test('a half-closed stream is ended by the server with OK and unregistered', async () => {
    const { client, records } = await start();
    const s = ads(client, CDS, []);
    await s.nextOf(CDS);
    expect(records()).toHaveLength(1);
    s.end();
    expect(codeName((await s.closed()).code)).toBe('OK');
    await waitFor(() => records().length === 0, { what: 'the stream to be forgotten', timeoutMs: 3_000, intervalMs: 10 });
  });

  test('a one-shot client (request, then half-close at once, as grpcurl does) still gets its answer, then OK', async () => {
    const { client, records } = await start();
    const s = ads(client, CDS, []);
    s.end();
    expect(namesOf(await s.nextOf(CDS))).toEqual(['api', 'web']);
    expect(codeName((await s.closed()).code)).toBe('OK');
    await waitFor(() => records().length === 0, { what: 'the stream to be forgotten', timeoutMs: 3_000, intervalMs: 10 });
  });
});

describe('node groups', () => {
  const grouped = (): ConfigDoc => ({
    ...withCluster(baseConfig(), 'edge-backend', { name: 'edge-in', port: 10002 }),
    nodeGroups: [{ nodeCluster: 'edge', listeners: ['edge-in'] }],
  });

  test('a node group added at runtime narrows a connected node\'s view; removing it widens it again', async () => {
    const plain = withCluster(baseConfig(), 'edge-backend', { name: 'edge-in', port: 10002 });
    const { client, apply } = await start(plain);
    const s = ads(client, CDS, [], { id: 'edge-1', cluster: 'edge' });
    const all = await s.nextOf(CDS);
    expect(namesOf(all)).toEqual(['api', 'edge-backend', 'web']);
    s.ack(all);
    await apply(grouped());
    const narrowed = await s.nextOf(CDS);
    expect(namesOf(narrowed)).toEqual(['edge-backend']);
    s.ack(narrowed);
    await apply(plain);
    expect(namesOf(await s.nextOf(CDS))).toEqual(['api', 'edge-backend', 'web']);
  });

  test('Fetch honors node groups too', async () => {
    const { client } = await start(grouped());
    const edge = await client.fetch(SERVICE.CDS.fetch, { node: { id: 'edge-1', cluster: 'edge' }, type_url: CDS });
    expect(namesOf(edge)).toEqual(['edge-backend']);
    const core = await client.fetch(SERVICE.CDS.fetch, { node: { id: 'core-1', cluster: 'core' }, type_url: CDS });
    expect(namesOf(core)).toEqual(['api', 'edge-backend', 'web']);
  });
});

describe('per-type services', () => {
  const cases = [
    { svc: 'CDS', type: CDS, names: [] as string[], expected: ['api', 'web'] },
    { svc: 'EDS', type: EDS, names: ['web'], expected: ['web'] },
    { svc: 'LDS', type: LDS, names: [] as string[], expected: ['ingress'] },
    { svc: 'RDS', type: RDS, names: ['ingress'], expected: ['ingress'] },
  ] as const;

  test('a per-type stream accepts an empty type_url as its own type', async () => {
    const { client } = await start();
    const s = client.sotw(SERVICE.CDS.sotw);
    s.send({ node: NODE, type_url: '', resource_names: [] });
    const r = await s.next();
    expect(r.type_url).toBe(CDS);
    expect(namesOf(r)).toEqual(['api', 'web']);
  });

  test.each(cases)('Fetch for $svc answers with the requested (or, for CDS/LDS, all) resources', async ({ svc, type, names, expected }) => {
    const { client } = await start();
    const r = await client.fetch(SERVICE[svc].fetch, { node: NODE, type_url: type, resource_names: [...names] });
    expect(r.type_url).toBe(type);
    expect(namesOf(r)).toEqual(expected);
    expect(r.version_info).not.toBe('');
  });

  test('Fetch rejects a mismatched type_url with INVALID_ARGUMENT', async () => {
    const { client } = await start();
    const err = await client.fetch(SERVICE.CDS.fetch, { node: NODE, type_url: LDS }).catch((e: unknown) => e);
    expect(codeName((err as { code: number }).code)).toBe('INVALID_ARGUMENT');
    expect((err as { details: string }).details).toContain(LDS);
  });
});

describe('bad input', () => {
  test('an empty type URL on ADS ends the stream with INVALID_ARGUMENT', async () => {
    const { client } = await start();
    const s = client.sotw();
    s.request('', [], { node: NODE });
    const status = await s.closed();
    expect(codeName(status.code)).toBe('INVALID_ARGUMENT');
    expect(status.details).toMatch(/type_url/);
  });

  test('a type URL that is none, after a good exchange, also ends the stream (and unregisters the proxy)', async () => {
    const { client, records } = await start();
    const s = ads(client, CDS, []);
    s.ack(await s.nextOf(CDS));
    s.request('google.protobuf.Empty', []);
    expect(codeName((await s.closed()).code)).toBe('INVALID_ARGUMENT');
    await waitFor(() => records().length === 0, { what: 'the proxy to be unregistered', timeoutMs: 3_000, intervalMs: 10 });
  });

  test('server.xds.maxResourceNames is configurable: at the limit is fine, one more is RESOURCE_EXHAUSTED', async () => {
    const { client } = await start({ ...baseConfig(), server: { xds: { maxResourceNames: 3 } } });
    const ok = ads(client, EDS, ['web', 'api', 'x']);
    expect(namesOf(await ok.nextOf(EDS))).toEqual(['api', 'web']);
    const tooMany = ads(client, EDS, ['web', 'api', 'x', 'y'], { ...NODE, id: 'node-2' });
    const status = await tooMany.closed();
    expect(codeName(status.code)).toBe('RESOURCE_EXHAUSTED');
    expect(status.details).toMatch(/limit is 3/);
  });

  test('Fetch with 100k resource names → RESOURCE_EXHAUSTED, like the streams', async () => {
    const { client } = await start();
    const names = Array.from({ length: 100_000 }, (_, i) => `c${i}`);
    const err = await client.fetch(SERVICE.EDS.fetch, { node: NODE, type_url: EDS, resource_names: names }, 10_000).catch((e: unknown) => e);
    expect(codeName((err as { code?: number }).code ?? 0)).toBe('RESOURCE_EXHAUSTED');
  });

  test('malformed bytes end that stream with a non-OK status; other streams keep being served', async () => {
    const { client, newClient, records } = await start();
    const healthy = ads(client, CDS, []);
    healthy.ack(await healthy.nextOf(CDS));

    const raw = client.raw(ADS);
    raw.send(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 0x01, 0x02, 0x03]));
    const status = await raw.closed();
    expect(codeName(status.code)).not.toBe('OK');

    // The stream opened before still gets pushes, and a fresh connection is served.
    const fresh = newClient().sotw();
    fresh.request(CDS, [], { node: { ...NODE, id: 'node-2' } });
    expect(namesOf(await fresh.nextOf(CDS))).toEqual(['api', 'web']);
    healthy.request(EDS, ['web']);
    expect(namesOf(await healthy.nextOf(EDS))).toEqual(['web']);
    expect(records().map((r) => r.node.id).sort()).toEqual(['node-1', 'node-2']);
  });

  test('malformed bytes after a valid first request end the stream and unregister the proxy', async () => {
    const { client, records } = await start();
    const raw = client.raw(ADS);
    raw.send(encodeDiscoveryRequest({ node: NODE, type_url: CDS, resource_names: [] }));
    const first = await raw.next();
    expect(first.length).toBeGreaterThan(0);
    expect(records()).toHaveLength(1);
    raw.send(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]));
    expect(codeName((await raw.closed()).code)).not.toBe('OK');
    await waitFor(() => records().length === 0, { what: 'the broken stream to be unregistered', timeoutMs: 3_000, intervalMs: 10 });
  });

  test('a client that cancels mid-conversation does not disturb the server', async () => {
    const { client, newClient, apply } = await start();
    for (let i = 0; i < 5; i++) {
      const s = ads(client, CDS, [], { ...NODE, id: `flap-${i}` });
      await s.nextOf(CDS);
      s.cancel();
    }
    const survivor = ads(newClient(), CDS, []);
    survivor.ack(await survivor.nextOf(CDS));
    await apply(withCluster(baseConfig(), 'ghost'));
    expect(namesOf(await survivor.nextOf(CDS))).toEqual(['api', 'ghost', 'web']);
  });
});
