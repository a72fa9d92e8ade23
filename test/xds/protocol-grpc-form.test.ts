/**
 * Proxyless gRPC clients (told by node.user_agent_name) are served their own form of the endpoint
 * assignments (src/xds/grpc-assignments.ts) on every path: SotW and Delta streams, the unary
 * fetch, the config dump; and Envoys keep theirs, unwoken by what concerns gRPC clients alone.
 */
import { describe, expect, test } from 'vitest';
import { CDS, EDS, decodeResources, namesOf, SERVICE, type DeltaDiscoveryResponse, type DiscoveryResponse, type XdsClient } from '../support/xds-client.js';
import { edit, harnessPerTest, NODE, type ConfigDoc } from './protocol-fixture.js';

const start = harnessPerTest();
const GRPC_NODE = { id: 'grpc-1', cluster: 'default', user_agent_name: 'gRPC Go' } as const;

/** `web` weighs its endpoints 1:3, so gRPC clients get each in a locality of its own. */
function weighted(): ConfigDoc {
  return {
    clusters: [{ name: 'web', lbPolicy: 'ROUND_ROBIN', endpoints: [{ address: '10.0.0.1', port: 8080, weight: 1 }, { address: '10.0.0.1', port: 8081, weight: 3 }] }],
    listeners: [{ name: 'ingress', address: '127.0.0.1', port: 10000, routes: [{ prefix: '/', cluster: 'web' }] }],
  };
}

/** Per locality of `web`'s assignment: its sub-zone and weight. */
function localities(resp: DiscoveryResponse | DeltaDiscoveryResponse): string[] {
  const cla = decodeResources(resp).find((r) => r.name === 'web')?.message as { endpoints?: { locality?: { sub_zone?: string }; load_balancing_weight?: { value?: number } }[] } | undefined;
  if (cla === undefined) throw new Error('web not in the response');
  return (cla.endpoints ?? []).map((l) => `${l.locality?.sub_zone ?? ''}=${l.load_balancing_weight?.value ?? ''}`);
}

const ENVOY_FORM = ['=4'];
const GRPC_FORM = ['@10.0.0.1:8080=1', '@10.0.0.1:8081=3'];

function sotwEds(client: XdsClient, node: object) {
  const s = client.sotw();
  s.request(EDS, ['web'], { node });
  return s;
}

describe('proxyless gRPC clients get their form of the assignments', () => {
  test('SotW: the first gRPC client\'s first answer is its form; the Envoy stream open before is not pushed for it', async () => {
    const { client } = await start(weighted());
    const envoy = sotwEds(client, NODE);
    const envoyEds = await envoy.nextOf(EDS);
    expect(localities(envoyEds)).toEqual(ENVOY_FORM);
    envoy.ack(envoyEds);
    const grpc = sotwEds(client, GRPC_NODE);
    expect(localities(await grpc.nextOf(EDS))).toEqual(GRPC_FORM);
    await envoy.expectNone(300);
  });

  test('Delta: a client that says it is gRPC gets its form, and follows a change', async () => {
    const h = await start(weighted());
    const grpc = h.client.delta();
    grpc.send({ node: GRPC_NODE, type_url: EDS, resource_names_subscribe: ['web'] });
    const first = await grpc.nextOf(EDS);
    expect(localities(first)).toEqual(GRPC_FORM);
    grpc.ack(first);
    await h.apply(edit(weighted(), (d) => void ((d.clusters?.[0]?.endpoints ?? [])[1] = { address: '10.0.0.1', port: 8081, weight: 5 })));
    expect(localities(await grpc.nextOf(EDS))).toEqual(['@10.0.0.1:8080=1', '@10.0.0.1:8081=5']);
  });

  test('the unary fetch answers a gRPC client in its form, an Envoy in its own', async () => {
    const { client } = await start(weighted());
    expect(localities(await client.fetch(SERVICE.EDS.fetch, { node: NODE, type_url: EDS, resource_names: ['web'] }))).toEqual(ENVOY_FORM);
    expect(localities(await client.fetch(SERVICE.EDS.fetch, { node: GRPC_NODE, type_url: EDS, resource_names: ['web'] }))).toEqual(GRPC_FORM);
  });

  test('a gRPC client in a node group gets that group\'s selection in its form, and the config dump shows it', async () => {
    const doc = edit(weighted(), (d) => {
      d.clusters?.push({ name: 'api', lbPolicy: 'ROUND_ROBIN', endpoints: [{ address: '10.0.0.2', port: 8080, weight: 1 }, { address: '10.0.0.2', port: 8081, weight: 2 }] });
      d.nodeGroups = [{ nodeCluster: 'edge', clusters: ['web'] }];
    });
    const h = await start(doc);
    const grpc = h.client.sotw();
    grpc.request(CDS, [], { node: { ...GRPC_NODE, cluster: 'edge' } });
    expect(namesOf(await grpc.nextOf(CDS))).toEqual(['web']);
    grpc.request(EDS, ['web', 'api']);
    const eds = await grpc.nextOf(EDS);
    expect(namesOf(eds)).toEqual(['web']);
    expect(localities(eds)).toEqual(GRPC_FORM);
    const dump = (await (await fetch(`http://127.0.0.1:${h.fulcrum.adminPort}/v1/config_dump?node=${GRPC_NODE.id}&type=EDS`)).json()) as { group: string; form?: string };
    expect(dump).toMatchObject({ group: 'edge', form: 'grpc' });
  });
});

describe('the first gRPC client of a big catalog', () => {
  test('is first answered in its form, not Envoy\'s then its own (its localities would be built, dropped and built again)', async () => {
    // 1,200 endpoints of unequal weights: past BIG_CLUSTER_ENDPOINTS, so gRPC's form is encoded ahead, in turns.
    const endpoints = Array.from({ length: 1_200 }, (_, i) => ({ address: `10.1.${i >> 8}.${i & 255}`, port: 8080, weight: 1 + (i % 3) }));
    const { client } = await start({ clusters: [{ name: 'big', lbPolicy: 'ROUND_ROBIN', endpoints }], listeners: [] });
    const grpc = client.sotw();
    grpc.request(EDS, ['big'], { node: GRPC_NODE });
    const first = decodeResources(await grpc.nextOf(EDS)).find((r) => r.name === 'big')?.message as { endpoints?: unknown[] } | undefined;
    expect(first?.endpoints).toHaveLength(1_200);
  });
});
