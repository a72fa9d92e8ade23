/**
 * Protocol rules SotW and Delta share, written once and run for both over gRPC against an
 * in-process fulcrum. What the protocols say differently (a SotW CDS response carries the full
 * set, a Delta one only what changed) is spelled out per protocol in the expectations.
 * Protocol-specific conversations stay in protocol-sotw.test.ts and protocol-delta.test.ts.
 */
import { describe, expect, test } from 'vitest';
import { waitFor } from '../support/wait.js';
import { CDS, codeName, EDS, LDS, RDS, SERVICE, SHORT, type XdsClient } from '../support/xds-client.js';
import { converse, PROTOCOLS, type Conversation, type Reply } from './protocol-conversation.js';
import { baseConfig, edit, harnessPerTest, NODE, withCluster, type ConfigDoc } from './protocol-fixture.js';

const start = harnessPerTest();

function endpointPorts(r: Reply, cluster: string): number[] {
  const cla = r.resources.find((x) => x.name === cluster)?.message as
    | { endpoints: { lb_endpoints: { endpoint: { address: { socket_address: { port_value: number } } } }[] }[] }
    | undefined;
  if (!cla) throw new Error(`${cluster} not in ${SHORT[r.type]} response (${r.names.join(',')})`);
  return cla.endpoints.flatMap((l) => l.lb_endpoints.map((e) => e.endpoint.address.socket_address.port_value));
}

const messageOf = (r: Reply, name: string): Record<string, unknown> | undefined => r.resources.find((x) => x.name === name)?.message;

describe.each(PROTOCOLS)('%s', (protocol) => {
  /** Opens an ADS conversation and subscribes the first type with the node attached. */
  function ads(client: XdsClient, type: string, names: string[], node: object = NODE): Conversation {
    const c = converse(client, protocol);
    c.subscribe(type, names, node);
    return c;
  }

  describe('node', () => {
    test('a first request without node ends the stream with INVALID_ARGUMENT', async () => {
      const { client, records } = await start();
      const c = converse(client, protocol);
      c.subscribe(CDS, []);
      const status = await c.closed();
      expect(codeName(status.code)).toBe('INVALID_ARGUMENT');
      expect(status.details).toMatch(/node/);
      expect(records()).toHaveLength(0);
    });

    test('a first request whose node has no id is rejected too', async () => {
      const { client } = await start();
      const c = converse(client, protocol);
      c.subscribe(CDS, [], { cluster: 'default' });
      expect(codeName((await c.closed()).code)).toBe('INVALID_ARGUMENT');
    });

    test('later requests may omit node: the stream remembers it', async () => {
      const { client, proxy } = await start();
      const c = ads(client, CDS, []);
      c.ack(await c.nextOf(CDS)); // no node
      c.subscribe(EDS, ['web']); // no node, new type
      expect((await c.nextOf(EDS)).names).toEqual(['web']);
      const p = await proxy();
      expect(p.nodeId).toBe(NODE.id);
      expect(p.nodeCluster).toBe(NODE.cluster);
      expect(p.protocol).toBe(protocol);
      expect(c.ended).toBeUndefined();
    });
  });

  describe('wildcard', () => {
    test.each([CDS, LDS])('the first wildcard request (%s) is answered even when there is nothing', async (type) => {
      const { client } = await start({});
      const c = ads(client, type, []);
      const r = await c.nextOf(type);
      expect(r.resources).toHaveLength(0);
      expect(r.removed).toHaveLength(0);
      expect(r.nonce).not.toBe('');
    });

    test('an empty first EDS request is not a wildcard', async () => {
      const { client } = await start();
      const c = ads(client, EDS, []);
      await c.expectNone(200);
    });
  });

  describe('subscriptions', () => {
    test('an EDS name that does not exist yet gets nothing (Delta: its removal, once) until it appears in the config, then gets it', async () => {
      const { client, apply } = await start();
      const c = ads(client, EDS, ['ghost']);
      // Delta tells a subscribed name that does not exist in removed_resources (xds_protocol,
      // "Knowing When a Requested Resource Does Not Exist"); SotW EDS has no way to say it.
      if (protocol === 'delta') {
        const told = await c.nextOf(EDS);
        expect([told.names, told.removed]).toEqual([[], ['ghost']]);
        c.ack(told);
      }
      await c.expectNone(200);
      await apply(withCluster(baseConfig(), 'ghost'));
      const eds = await c.nextOf(EDS);
      expect(eds.names).toEqual(['ghost']);
      expect(endpointPorts(eds, 'ghost')).toEqual([9090]);
    });

    test('unsubscribe then resubscribe resends, even at the same version', async () => {
      const { client } = await start();
      const c = ads(client, EDS, ['web']);
      const first = await c.nextOf(EDS);
      c.ack(first);
      c.unsubscribe(EDS, ['web']);
      await c.expectNone(150);
      c.subscribe(EDS, ['web']);
      const again = await c.nextOf(EDS);
      expect(again.names).toEqual(['web']);
      expect(again.versionOf('web')).toBe(first.versionOf('web'));
      expect(again.nonce).not.toBe(first.nonce);
    });
  });

  describe('cluster warming', () => {
    test('an updated cluster is followed by its endpoints, even though they did not change', async () => {
      const { client, apply } = await start();
      const c = ads(client, CDS, []);
      c.ack(await c.nextOf(CDS));
      c.subscribe(EDS, ['api', 'web']);
      const eds = await c.nextOf(EDS);
      c.ack(eds);
      await c.expectNone(100);

      await apply(edit(baseConfig(), (d) => (d.clusters![1]!.lbPolicy = 'RANDOM')));
      const cds = await c.next();
      expect(SHORT[cds.type]).toBe('CDS');
      // SotW: CDS carries the full set and EDS answers for every name; Delta: only what changed.
      expect(cds.names).toEqual(protocol === 'sotw' ? ['api', 'web'] : ['web']);
      expect(JSON.stringify(messageOf(cds, 'web')?.load_balancing_policy)).toContain('envoy.load_balancing_policies.random');
      c.ack(cds);
      const eds2 = await c.next();
      expect(SHORT[eds2.type]).toBe('EDS');
      expect(eds2.names).toEqual(protocol === 'sotw' ? ['api', 'web'] : ['web']);
      // Endpoints did not change: same content, answered anyway.
      expect(eds2.versionOf('web')).toBe(eds.versionOf('web'));
      expect(endpointPorts(eds2, 'web')).toEqual([8080]);
    });
  });

  describe('ADS ordering (make-before-break)', () => {
    async function subscribed(client: XdsClient): Promise<Conversation> {
      const c = ads(client, CDS, []);
      c.ack(await c.nextOf(CDS));
      c.subscribe(EDS, ['api', 'web', 'newc']);
      c.ack(await c.nextOf(EDS));
      c.subscribe(LDS, []);
      c.ack(await c.nextOf(LDS));
      c.subscribe(RDS, ['ingress', 'ingress2']);
      c.ack(await c.nextOf(RDS));
      await c.expectNone(100);
      return c;
    }

    const added = (): ConfigDoc =>
      edit(withCluster(baseConfig(), 'newc', { name: 'ingress2', port: 10001 }), (d) => {
        d.listeners![0]!.routes.unshift({ prefix: '/new', cluster: 'newc' });
      });

    test('adding a cluster and a route to it: CDS, then EDS, then LDS, then RDS', async () => {
      const { client, apply } = await start();
      const c = await subscribed(client);
      await apply(added());
      const got = [await c.next(), await c.next(), await c.next(), await c.next()];
      expect(got.map((r) => SHORT[r.type])).toEqual(['CDS', 'EDS', 'LDS', 'RDS']);
      expect(got[0]?.names).toContain('newc');
      expect(got[1]?.names).toContain('newc');
      expect(got[2]?.names).toContain('ingress2');
      // SotW: CDS and LDS carry the full set, EDS follows CDS in full; Delta: what changed.
      const expected =
        protocol === 'sotw'
          ? [['api', 'newc', 'web'], ['api', 'newc', 'web'], ['ingress', 'ingress2']]
          : [['newc'], ['newc'], ['ingress2']];
      expect(got.slice(0, 3).map((r) => r.names)).toEqual(expected);
      // Both route configurations changed (a route to newc was added to `ingress`).
      expect(got[3]?.names).toEqual(['ingress', 'ingress2']);
    });

    test('removing a cluster and its route: the response dropping the cluster comes after the RDS and LDS ones', async () => {
      const { client, apply } = await start(added());
      const c = await subscribed(client);
      await apply(baseConfig());
      const seen: Reply[] = [];
      const cdsDrops = (r: Reply) => r.type === CDS && c.drops(r, 'newc');
      while (!seen.some(cdsDrops)) seen.push(await c.next());
      const order = seen.map((r) => `${SHORT[r.type]}[${r.names.join(',')}]-[${r.removed.join(',')}]`).join(' ');
      const rds = seen.findIndex((r) => r.type === RDS);
      const ldsDrop = seen.findIndex((r) => r.type === LDS && c.drops(r, 'ingress2'));
      const cdsDrop = seen.findIndex(cdsDrops);
      expect(rds, order).toBeGreaterThanOrEqual(0);
      expect(ldsDrop, order).toBeGreaterThanOrEqual(0);
      expect(cdsDrop, order).toBeGreaterThan(rds);
      expect(cdsDrop, order).toBeGreaterThan(ldsDrop);
      // SotW: LDS now carries only `ingress`; Delta: it removes `ingress2`.
      const lds = seen[ldsDrop];
      expect(protocol === 'sotw' ? lds?.names : lds?.removed, order).toEqual(protocol === 'sotw' ? ['ingress'] : ['ingress2']);
      // The RDS response that arrives first no longer routes to newc.
      expect(JSON.stringify(seen[rds]?.resources.map((r) => r.message))).not.toContain('newc');
      // No earlier CDS response dropped it.
      for (const r of seen.slice(0, cdsDrop)) if (r.type === CDS) expect(c.drops(r, 'newc')).toBe(false);
    });

    test('a route moving to a new cluster: the new cluster and its endpoints before the route, the old cluster leaves after', async () => {
      const { client, apply } = await start();
      const c = ads(client, CDS, []);
      c.ack(await c.nextOf(CDS));
      c.subscribe(EDS, ['api', 'web', 'web2']);
      c.ack(await c.nextOf(EDS));
      c.subscribe(RDS, ['ingress']);
      c.ack(await c.nextOf(RDS));
      await c.expectNone(100);

      // web is replaced by web2: the catch-all route moves over.
      await apply(edit(baseConfig(), (d) => {
        d.clusters![1] = { name: 'web2', endpoints: [{ address: '10.0.0.3', port: 8080 }] };
        d.listeners![0]!.routes[1]!.cluster = 'web2';
      }));
      const seen: Reply[] = [];
      const cdsDropsWeb = (r: Reply) => r.type === CDS && c.drops(r, 'web');
      while (!seen.some(cdsDropsWeb)) seen.push(await c.next());
      const order = seen.map((r) => `${SHORT[r.type]}[${r.names.join(',')}]-[${r.removed.join(',')}]`).join(' ');
      const rds = seen.findIndex((r) => r.type === RDS);
      const cdsWith = seen.findIndex((r) => r.type === CDS && r.names.includes('web2'));
      const edsWith = seen.findIndex((r) => r.type === EDS && r.names.includes('web2'));
      const cdsDrop = seen.findIndex(cdsDropsWeb);
      expect(cdsWith, order).toBeGreaterThanOrEqual(0);
      expect(cdsWith, order).toBeLessThan(rds);
      expect(edsWith, order).toBeLessThan(rds);
      expect(cdsDrop, order).toBeGreaterThan(rds);
    });
  });

  describe('node groups', () => {
    test('a node in a group sees only its listeners and the clusters their routes use; another node sees everything', async () => {
      const { client } = await start({
        ...withCluster(baseConfig(), 'edge-backend', { name: 'edge-in', port: 10002 }),
        nodeGroups: [{ nodeCluster: 'edge', listeners: ['edge-in'] }],
      });
      const edge = ads(client, CDS, [], { id: 'edge-1', cluster: 'edge' });
      expect((await edge.nextOf(CDS)).names).toEqual(['edge-backend']);
      edge.subscribe(LDS, []);
      expect((await edge.nextOf(LDS)).names).toEqual(['edge-in']);
      edge.subscribe(EDS, ['web', 'edge-backend']);
      expect((await edge.nextOf(EDS)).names).toEqual(['edge-backend']);
      edge.subscribe(RDS, ['ingress', 'edge-in']);
      expect((await edge.nextOf(RDS)).names).toEqual(['edge-in']);

      const other = ads(client, CDS, [], { id: 'core-1', cluster: 'core' });
      expect((await other.nextOf(CDS)).names).toEqual(['api', 'edge-backend', 'web']);
      other.subscribe(LDS, []);
      expect((await other.nextOf(LDS)).names).toEqual(['edge-in', 'ingress']);
    });
  });

  describe('per-type services', () => {
    const cases = [
      { svc: 'CDS', type: CDS, names: [] as string[], expected: ['api', 'web'], service: /Cluster/ },
      { svc: 'EDS', type: EDS, names: ['web'], expected: ['web'], service: /Endpoint/ },
      { svc: 'LDS', type: LDS, names: [] as string[], expected: ['ingress'], service: /Listener/ },
      { svc: 'RDS', type: RDS, names: ['ingress'], expected: ['ingress'], service: /Route/ },
    ] as const;

    test.each(cases)('the $svc service serves its type, and ACKs make it SYNCED', async ({ svc, type, names, expected, service }) => {
      const { client, proxy } = await start();
      const c = converse(client, protocol, SERVICE[svc][protocol]);
      c.subscribe(type, [...names], NODE);
      const r = await c.nextOf(type);
      expect(r.names).toEqual(expected);
      c.ack(r);
      await waitFor(async () => (await proxy()).types[svc]?.state === 'SYNCED', { what: `${svc} SYNCED`, timeoutMs: 3_000, intervalMs: 10 });
      expect((await proxy()).service).toMatch(service);
    });

    test.each([
      { svc: 'CDS', wrong: EDS },
      { svc: 'CDS', wrong: LDS },
      { svc: 'EDS', wrong: CDS },
      { svc: 'EDS', wrong: RDS },
      { svc: 'LDS', wrong: RDS },
      { svc: 'LDS', wrong: CDS },
      { svc: 'RDS', wrong: LDS },
      { svc: 'RDS', wrong: EDS },
    ] as const)('the $svc service rejects $wrong with INVALID_ARGUMENT', async ({ svc, wrong }) => {
      const { client } = await start();
      const c = converse(client, protocol, SERVICE[svc][protocol]);
      c.subscribe(wrong, [], NODE);
      const status = await c.closed();
      expect(codeName(status.code)).toBe('INVALID_ARGUMENT');
      expect(status.details).toContain(wrong);
    });
  });

  describe('bad input', () => {
    // An Envoy that points SDS or RTDS at ADS asks for types fulcrum does not serve on the stream
    // its clusters ride: ending it cut the proxy off everything, at every reconnect.
    test('a type ADS does not serve (a Secret) is left unanswered, and the stream keeps serving the others', async () => {
      const { client, apply } = await start();
      const c = ads(client, 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret', ['cert']);
      c.subscribe(CDS, []);
      const cds = await c.nextOf(CDS);
      expect(cds.names).toEqual(['api', 'web']);
      c.ack(cds);
      c.subscribe('type.googleapis.com/envoy.service.runtime.v3.Runtime', ['layer']);
      await c.expectNone(200);
      await apply(withCluster(baseConfig(), 'extra'));
      expect((await c.nextOf(CDS)).names).toContain('extra');
      expect(c.ended).toBeUndefined();
    });

    test.each([
      ['not a type URL', 'not-a-type-url'],
      ['no message name', 'type.googleapis.com/'],
      ['over 256 characters', `type.googleapis.com/a.${'b'.repeat(300)}`],
    ])('a type URL with %s ends the stream with INVALID_ARGUMENT naming it', async (_what, wrong) => {
      const { client } = await start();
      const c = ads(client, wrong, []);
      const status = await c.closed();
      expect(codeName(status.code)).toBe('INVALID_ARGUMENT');
      expect(status.details).toContain(wrong.slice(0, 40));
    });

    test('100k resource names → RESOURCE_EXHAUSTED (default limit 20000)', async () => {
      const { client } = await start();
      const c = ads(client, EDS, Array.from({ length: 100_000 }, (_, i) => `c${i}`));
      const status = await c.closed(10_000);
      expect(codeName(status.code)).toBe('RESOURCE_EXHAUSTED');
      expect(status.details).toContain('20000');
    });
  });
});
