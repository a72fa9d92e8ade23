/**
 * Incremental (Delta) xDS protocol conversations, scripted with a raw gRPC client against an
 * in-process fulcrum on loopback. Rules Delta shares with SotW are in protocol-shared.test.ts.
 */
import { describe, expect, test } from 'vitest';
import { waitFor } from '../support/wait.js';
import {
  ADS_DELTA, CDS, codeName, decodeResources, EDS, encodeDeltaDiscoveryRequest, LDS, namesOf,
  versionsOf, type DeltaDiscoveryResponse, type DeltaStream, type XdsClient,
} from '../support/xds-client.js';
import { baseConfig, edit, harnessPerTest, NODE, withCluster } from './protocol-fixture.js';

const start = harnessPerTest();

/** Opens Delta ADS and sends the first request (with node) for one type. */
function delta(
  client: XdsClient,
  type: string,
  subscribe: string[],
  extra: { node?: object; initial_resource_versions?: Record<string, string>; path?: string } = {},
): DeltaStream {
  const s = client.delta(extra.path ?? ADS_DELTA);
  s.send({
    node: extra.node ?? NODE,
    type_url: type,
    resource_names_subscribe: subscribe,
    ...(extra.initial_resource_versions ? { initial_resource_versions: extra.initial_resource_versions } : {}),
  });
  return s;
}

const sorted = (xs: string[]) => [...xs].sort();
const removedOf = (r: DeltaDiscoveryResponse) => sorted(r.removed_resources);

describe('wildcard', () => {
  test('an empty first CDS request is a wildcard: every cluster, each with its own version', async () => {
    const { client, fulcrum, proxy } = await start();
    const s = delta(client, CDS, []);
    const r = await s.nextOf(CDS);
    expect(namesOf(r)).toEqual(['api', 'web']);
    const pool = fulcrum.cache.snapshotFor('').resources(CDS);
    expect(versionsOf(r)).toEqual({ api: pool.get('api')!.version, web: pool.get('web')!.version });
    expect(r.removed_resources).toEqual([]);
    s.ack(r);
    await waitFor(async () => (await proxy()).types.CDS?.state === 'SYNCED', { what: 'CDS SYNCED', timeoutMs: 3_000, intervalMs: 10 });
  });

  test('"*" subscribes to everything and new resources are pushed', async () => {
    const { client, apply } = await start();
    const s = delta(client, LDS, ['*']);
    const r = await s.nextOf(LDS);
    expect(namesOf(r)).toEqual(['ingress']);
    s.ack(r);
    await apply(withCluster(baseConfig(), 'extra', { name: 'ingress2', port: 10001 }));
    const pushed = await s.nextOf(LDS);
    // Only the new listener: the old one did not change.
    expect(namesOf(pushed)).toEqual(['ingress2']);
  });

});

describe('initial_resource_versions', () => {
  test('on reconnect, a resource whose version matches is not resent; one that differs is', async () => {
    const { client } = await start();
    const s1 = delta(client, CDS, []);
    const first = await s1.nextOf(CDS);
    s1.ack(first);
    const held = versionsOf(first);
    s1.cancel();

    const s2 = delta(client, CDS, [], { initial_resource_versions: { api: held.api!, web: 'not-what-you-have' } });
    const r = await s2.nextOf(CDS);
    expect(namesOf(r)).toEqual(['web']);
    expect(r.resources[0]!.version).toBe(held.web);
    expect(r.removed_resources).toEqual([]);
  });

  test('on reconnect after changes, only changed resources come, and deleted ones arrive as removed_resources', async () => {
    const { client, apply } = await start();
    const s1 = delta(client, CDS, []);
    const first = await s1.nextOf(CDS);
    s1.ack(first);
    s1.cancel();

    await apply(edit(baseConfig(), (d) => {
      d.clusters = d.clusters!.filter((c) => c.name !== 'api');
      d.clusters[0]!.lbPolicy = 'RANDOM';
      d.listeners![0]!.routes = [{ prefix: '/', cluster: 'web' }];
    }));
    const s2 = delta(client, CDS, [], { initial_resource_versions: versionsOf(first) });
    const r = await s2.nextOf(CDS);
    expect(namesOf(r)).toEqual(['web']);
    expect(r.resources[0]!.version).not.toBe(versionsOf(first).web);
    expect(JSON.stringify(decodeResources(r)[0]!.message.load_balancing_policy)).toContain('envoy.load_balancing_policies.random');
    expect(removedOf(r)).toEqual(['api']);
  });

  test('with all versions current, a reconnecting wildcard client is sent nothing and is SYNCED', async () => {
    const { client, records } = await start();
    const s1 = delta(client, CDS, []);
    const first = await s1.nextOf(CDS);
    s1.cancel();
    await waitFor(() => records().length === 0, { what: 'the first stream to be forgotten', timeoutMs: 3_000, intervalMs: 10 });
    const s2 = delta(client, CDS, [], { initial_resource_versions: versionsOf(first) });
    await waitFor(() => records()[0]?.types.get(CDS)?.ackedNonce === '', { what: 'the reconnect resumed', timeoutMs: 3_000, intervalMs: 10 });
    await s2.expectNone(150);
  });

  test('for named (EDS) subscriptions too', async () => {
    const { client } = await start();
    const s1 = delta(client, EDS, ['web', 'api']);
    const first = await s1.nextOf(EDS);
    expect(namesOf(first)).toEqual(['api', 'web']);
    s1.cancel();
    const s2 = delta(client, EDS, ['web', 'api', 'gone'], {
      initial_resource_versions: { web: versionsOf(first).web!, gone: 'v-old' },
    });
    const r = await s2.nextOf(EDS);
    expect(namesOf(r)).toEqual(['api']);
    expect(removedOf(r)).toEqual(['gone']);
  });

  test('a reconnect without initial_resource_versions gets the full state again', async () => {
    const { client, records } = await start();
    const s1 = delta(client, CDS, []);
    s1.ack(await s1.nextOf(CDS));
    s1.cancel();
    await waitFor(() => records().length === 0, { what: 'the first stream to be forgotten', timeoutMs: 3_000, intervalMs: 10 });
    const s2 = delta(client, CDS, []);
    expect(namesOf(await s2.nextOf(CDS))).toEqual(['api', 'web']);
  });
});

describe('changes', () => {
  test('a deleted cluster arrives as removed_resources (CDS and EDS), an unchanged one is not resent', async () => {
    const { client, apply } = await start();
    const s = delta(client, CDS, []);
    s.ack(await s.nextOf(CDS));
    s.send({ type_url: EDS, resource_names_subscribe: ['api', 'web'] });
    s.ack(await s.nextOf(EDS));
    await apply(edit(baseConfig(), (d) => {
      d.clusters = d.clusters!.filter((c) => c.name !== 'api');
      d.listeners![0]!.routes = [{ prefix: '/', cluster: 'web' }];
    }));
    const eds = await s.nextOf(EDS);
    expect(eds.resources).toEqual([]);
    expect(removedOf(eds)).toEqual(['api']);
    const cds = await s.nextOf(CDS);
    expect(cds.resources).toEqual([]);
    expect(removedOf(cds)).toEqual(['api']);
  });

  test('subscribing again to a name already held resends it (the client says it lost it)', async () => {
    const { client } = await start();
    const s = delta(client, EDS, ['web', 'api']);
    const first = await s.nextOf(EDS);
    s.ack(first);
    s.send({ type_url: EDS, resource_names_subscribe: ['web'], response_nonce: first.nonce });
    const again = await s.nextOf(EDS);
    expect(namesOf(again)).toEqual(['web']);
    expect(versionsOf(again).web).toBe(versionsOf(first).web);
  });

  test('an unsubscribed resource is not pushed any more', async () => {
    const { client, apply } = await start();
    const s = delta(client, EDS, ['web', 'api']);
    s.ack(await s.nextOf(EDS));
    s.send({ type_url: EDS, resource_names_unsubscribe: ['web'] });
    await apply(edit(baseConfig(), (d) => {
      d.clusters![0]!.endpoints = [{ address: '10.0.0.2', port: 8081 }];
      d.clusters![1]!.endpoints = [{ address: '10.0.0.1', port: 8081 }];
    }));
    const r = await s.nextOf(EDS);
    expect(namesOf(r)).toEqual(['api']);
    await s.expectNone(100);
  });
});

describe('nonces', () => {
  test('subscription changes are honored whatever the nonce (unknown or stale)', async () => {
    const { client, apply } = await start(withCluster(baseConfig(), 'third'));
    const s = delta(client, EDS, ['web']);
    const first = await s.nextOf(EDS);
    s.send({ type_url: EDS, resource_names_subscribe: ['api'], response_nonce: 'never-sent' });
    expect(namesOf(await s.nextOf(EDS))).toEqual(['api']);

    await apply(edit(withCluster(baseConfig(), 'third'), (d) => (d.clusters![1]!.endpoints = [{ address: '10.0.0.1', port: 8081 }])));
    const pushed = await s.nextOf(EDS);
    expect(pushed.nonce).not.toBe(first.nonce);
    // The client answers an older response while subscribing to one more name.
    s.send({ type_url: EDS, resource_names_subscribe: ['third'], response_nonce: first.nonce });
    expect(namesOf(await s.nextOf(EDS))).toEqual(['third']);
  });

  test('an ACK moves the type to SYNCED; a later push without ACK leaves it STALE', async () => {
    const { client, proxy, apply } = await start();
    const s = delta(client, CDS, []);
    const r = await s.nextOf(CDS);
    expect((await proxy()).types.CDS?.state).toBe('STALE');
    s.ack(r);
    await waitFor(async () => (await proxy()).types.CDS?.state === 'SYNCED', { what: 'CDS SYNCED', timeoutMs: 3_000, intervalMs: 10 });
    await apply(edit(baseConfig(), (d) => (d.clusters![1]!.lbPolicy = 'RANDOM')));
    await s.nextOf(CDS);
    expect((await proxy()).types.CDS?.state).toBe('STALE');
  });
});

describe('NACK', () => {
  test('is recorded (registry and CSDS), causes no resend, and a later change is sent', async () => {
    const { client, proxy, apply } = await start();
    const s = delta(client, CDS, []);
    const r = await s.nextOf(CDS);
    s.nack(r, 'cluster api: nope');
    await s.expectNone(250);

    const p = await waitFor(async () => {
      const x = await proxy();
      return x.types.CDS?.state === 'NACKED' ? x : undefined;
    }, { what: 'CDS NACKED', timeoutMs: 3_000, intervalMs: 10 });
    expect(p.types.CDS!.lastNack?.message).toBe('cluster api: nope');
    expect(p.types.CDS!.rejected).toEqual(['api']);
    // CSDS per resource: the NACK named api; the proxy took the rest of the response.
    const csds = await client.clientStatus(NODE.id);
    const cds = csds.config[0]!.generic_xds_configs.filter((g) => g.type_url === CDS).sort((a, b) => a.name.localeCompare(b.name));
    expect(cds.map((g) => [g.name, g.client_status, g.error_state?.details])).toEqual([
      ['api', 'NACKED', 'cluster api: nope'],
      ['web', 'ACKED', undefined],
    ]);

    // A plain follow-up request (no subscription change) does not resend the rejected content either.
    s.send({ type_url: CDS });
    await s.expectNone(150);

    await apply(edit(baseConfig(), (d) => (d.clusters![0]!.lbPolicy = 'RANDOM')));
    const next = await s.nextOf(CDS);
    expect(namesOf(next)).toEqual(['api']);
    expect(JSON.stringify(decodeResources(next)[0]!.message.load_balancing_policy)).toContain('envoy.load_balancing_policies.random');
  });
});

describe('bad input', () => {
  test('the name limit bounds the subscription, not just one request: growing it past the limit → RESOURCE_EXHAUSTED', async () => {
    const { client } = await start({ ...baseConfig(), server: { xds: { maxResourceNames: 4 } } });
    const s = delta(client, EDS, ['web', 'api', 'a1']);
    expect(namesOf(await s.nextOf(EDS))).toEqual(['api', 'web']);
    // Each request is under the limit; together they subscribe to 6 names.
    s.send({ type_url: EDS, resource_names_subscribe: ['a2', 'a3', 'a4'] });
    const status = await s.closed(1_000);
    expect(codeName(status.code)).toBe('RESOURCE_EXHAUSTED');
  });

  test('a wildcard client reconnecting with the versions it was sent is not refused, however many resources it holds', async () => {
    // The server itself serves 4 clusters; the name limit is 3. The client's initial_resource_versions
    // list what fulcrum sent it, not a subscription: it must not count against the limit.
    const cfg = withCluster(withCluster({ ...baseConfig(), server: { xds: { maxResourceNames: 3 } } }, 'c3'), 'c4');
    const { client } = await start(cfg);
    const s1 = delta(client, CDS, []);
    const first = await s1.nextOf(CDS);
    expect(namesOf(first)).toEqual(['api', 'c3', 'c4', 'web']);
    s1.cancel();
    const s2 = delta(client, CDS, [], { initial_resource_versions: versionsOf(first) });
    // Answered with nothing (it holds everything), and not ended.
    await s2.expectNone(300);
    expect(s2.ended).toBeUndefined();
    s2.send({ type_url: EDS, resource_names_subscribe: ['web'] });
    expect(namesOf(await s2.nextOf(EDS))).toEqual(['web']);
  });

  test('malformed bytes end that stream with a non-OK status; other streams keep being served', async () => {
    const { client, newClient, apply } = await start();
    const healthy = delta(client, CDS, []);
    healthy.ack(await healthy.nextOf(CDS));
    const raw = client.raw(ADS_DELTA);
    raw.send(encodeDeltaDiscoveryRequest({ node: { ...NODE, id: 'broken' }, type_url: CDS }));
    await raw.next();
    raw.send(Buffer.from([0x12, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x00]));
    expect(codeName((await raw.closed()).code)).not.toBe('OK');

    const fresh = delta(newClient(), CDS, [], { node: { ...NODE, id: 'node-2' } });
    expect(namesOf(await fresh.nextOf(CDS))).toEqual(['api', 'web']);
    await apply(withCluster(baseConfig(), 'ghost'));
    expect(namesOf(await healthy.nextOf(CDS))).toEqual(['ghost']);
    expect(namesOf(await fresh.nextOf(CDS))).toEqual(['ghost']);
  });
});
