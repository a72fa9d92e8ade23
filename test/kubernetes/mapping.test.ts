import { describe, expect, test } from 'vitest';
import type { Cluster } from '../../src/catalog/types.js';
import {
  endpointHealth,
  isKubernetesClusterName,
  mergeKubernetesClusters,
  nodeTopologies,
  slicesToClusters,
  type EndpointSliceLike,
  type ServiceLike,
  type SliceEndpointLike,
} from '../../src/sources/kubernetes.js';

const svc = (
  name: string,
  ports: { name?: string; port: number; protocol?: string; appProtocol?: string }[],
  opts: { namespace?: string; annotations?: Record<string, string>; balance?: string | null; type?: string } = {},
): ServiceLike => ({
  metadata: {
    name,
    namespace: opts.namespace ?? 'shop',
    labels: opts.balance === null ? {} : { 'fulcrum.io/balance': opts.balance ?? 'true' },
    annotations: opts.annotations ?? {},
  },
  spec: { ports, ...(opts.type ? { type: opts.type } : {}) },
});

const slice = (
  name: string,
  service: string,
  endpoints: SliceEndpointLike[],
  ports: { name?: string | null; port?: number | null; protocol?: string }[] = [{ name: 'http', port: 8080 }],
  opts: { namespace?: string; addressType?: string } = {},
): EndpointSliceLike => ({
  metadata: { name, namespace: opts.namespace ?? 'shop', labels: { 'kubernetes.io/service-name': service } },
  addressType: opts.addressType ?? 'IPv4',
  endpoints,
  ports,
});

const ep = (address: string, conditions: SliceEndpointLike['conditions'] = { ready: true }, extra: Partial<SliceEndpointLike> = {}): SliceEndpointLike => ({
  addresses: [address],
  conditions,
  ...extra,
});

const byName = (clusters: readonly Cluster[], name: string): Cluster => {
  const c = clusters.find((x) => x.name === name);
  if (!c) throw new Error(`no cluster ${name} in ${clusters.map((x) => x.name).join(', ')}`);
  return c;
};
const summary = (c: Cluster): string[] => c.endpoints.map((e) => `${e.address}:${e.port} ${e.health}`);

describe('endpointHealth', () => {
  test.each([
    [{ ready: true, serving: true, terminating: false }, 'HEALTHY'],
    [{ ready: false, serving: false, terminating: false }, 'UNHEALTHY'],
    [{ ready: false, serving: true, terminating: true }, 'DRAINING'],
    [{ ready: false, serving: false, terminating: true }, 'UNHEALTHY'],
    // publishNotReadyAddresses keeps ready=true while terminating: still drained
    [{ ready: true, serving: true, terminating: true }, 'DRAINING'],
    // nil ready reads as true; nil serving as ready; nil terminating as false
    [{}, 'HEALTHY'],
    [undefined, 'HEALTHY'],
    [{ ready: null, serving: null, terminating: null }, 'HEALTHY'],
    [{ ready: false }, 'UNHEALTHY'],
    [{ terminating: true }, 'DRAINING'],
    [{ ready: false, terminating: true }, 'UNHEALTHY'],
  ] as const)('%j → %s', (conditions, health) => {
    expect(endpointHealth(conditions)).toBe(health);
  });
});

describe('slicesToClusters', () => {
  test('one cluster per TCP service port, named ns/svc:port-name, endpoints from the matching slice port', () => {
    const out = slicesToClusters(
      [svc('web', [{ name: 'http', port: 80 }, { name: 'grpc', port: 9000, appProtocol: 'kubernetes.io/h2c' }, { name: 'dns', port: 53, protocol: 'UDP' }])],
      [
        slice('web-abc', 'web', [ep('10.1.0.1'), ep('10.1.0.2')], [
          { name: 'http', port: 8080 },
          { name: 'grpc', port: 9090 },
          { name: 'dns', port: 5353, protocol: 'UDP' },
        ]),
      ],
    );
    expect(out.clusters.map((c) => c.name)).toEqual(['shop/web:grpc', 'shop/web:http']);
    const http = byName(out.clusters, 'shop/web:http');
    expect(summary(http)).toEqual(['10.1.0.1:8080 HEALTHY', '10.1.0.2:8080 HEALTHY']);
    expect(http).toMatchObject({ lbPolicy: 'ROUND_ROBIN', http2: false, connectTimeoutMs: 1000, weighting: { kind: 'static' } });
    expect(http.endpoints[0]).toEqual({
      address: '10.1.0.1',
      port: 8080,
      weight: 1,
      priority: 0,
      health: 'HEALTHY',
      locality: { region: '', zone: '', subZone: '' },
    });
    const grpc = byName(out.clusters, 'shop/web:grpc');
    expect(grpc.http2).toBe(true);
    expect(summary(grpc)).toEqual(['10.1.0.1:9090 HEALTHY', '10.1.0.2:9090 HEALTHY']);
    expect(out.warnings).toEqual([]);
  });

  test('an unnamed port is named by its number and matches the slice port with an empty or absent name', () => {
    const out = slicesToClusters(
      [svc('api', [{ port: 8443 }])],
      [
        slice('api-1', 'api', [ep('10.2.0.1')], [{ name: '', port: 443 }]),
        slice('api-2', 'api', [ep('10.2.0.2')], [{ port: 443 }]),
        slice('api-3', 'api', [ep('10.2.0.3')], [{ name: null, port: 443 }]),
      ],
    );
    expect(out.clusters.map((c) => c.name)).toEqual(['shop/api:8443']);
    expect(summary(out.clusters[0]!)).toEqual(['10.2.0.1:443 HEALTHY', '10.2.0.2:443 HEALTHY', '10.2.0.3:443 HEALTHY']);
  });

  test('only services labelled fulcrum.io/balance=true; ExternalName skipped; slices of other services ignored', () => {
    const out = slicesToClusters(
      [
        svc('web', [{ name: 'http', port: 80 }]),
        svc('off', [{ name: 'http', port: 80 }], { balance: 'false' }),
        svc('none', [{ name: 'http', port: 80 }], { balance: null }),
        svc('ext', [{ name: 'http', port: 80 }], { type: 'ExternalName' }),
      ],
      [slice('web-1', 'web', [ep('10.0.0.1')]), slice('other-1', 'other', [ep('10.0.0.9')]), slice('off-1', 'off', [ep('10.0.0.8')])],
    );
    expect(out.clusters.map((c) => c.name)).toEqual(['shop/web:http']);
    expect(summary(out.clusters[0]!)).toEqual(['10.0.0.1:8080 HEALTHY']);
  });

  test('slices are matched by namespace too', () => {
    const out = slicesToClusters(
      [svc('web', [{ name: 'http', port: 80 }], { namespace: 'a' }), svc('web', [{ name: 'http', port: 80 }], { namespace: 'b' })],
      [slice('web-1', 'web', [ep('10.0.0.1')], undefined, { namespace: 'a' }), slice('web-1', 'web', [ep('10.0.0.2')], undefined, { namespace: 'b' })],
    );
    expect(out.clusters.map((c) => `${c.name} ${summary(c).join(',')}`)).toEqual([
      'a/web:http 10.0.0.1:8080 HEALTHY',
      'b/web:http 10.0.0.2:8080 HEALTHY',
    ]);
  });

  test('a selected service without slices is a cluster with no endpoints', () => {
    const out = slicesToClusters([svc('web', [{ name: 'http', port: 80 }])], []);
    expect(out.clusters).toHaveLength(1);
    expect(out.clusters[0]!.endpoints).toEqual([]);
  });

  test('ready → HEALTHY, serving+terminating → DRAINING, not ready → UNHEALTHY (kept)', () => {
    const out = slicesToClusters(
      [svc('web', [{ name: 'http', port: 80 }])],
      [
        slice('web-1', 'web', [
          ep('10.0.0.1', { ready: true, serving: true, terminating: false }),
          ep('10.0.0.2', { ready: false, serving: true, terminating: true }),
          ep('10.0.0.3', { ready: false, serving: false, terminating: false }),
          ep('10.0.0.4', { ready: false, serving: false, terminating: true }),
        ]),
      ],
    );
    expect(summary(out.clusters[0]!)).toEqual([
      '10.0.0.1:8080 HEALTHY',
      '10.0.0.2:8080 DRAINING',
      '10.0.0.3:8080 UNHEALTHY',
      '10.0.0.4:8080 UNHEALTHY',
    ]);
  });

  test('multiple slices are unioned; duplicates (address:port) kept once, the most available wins', () => {
    const out = slicesToClusters(
      [svc('web', [{ name: 'http', port: 80 }])],
      [
        slice('web-b', 'web', [ep('10.0.0.2', { ready: true }, { zone: 'b' }), ep('10.0.0.3', { ready: false })]),
        slice('web-a', 'web', [ep('10.0.0.1'), ep('10.0.0.2', { ready: false }, { zone: 'a' }), ep('10.0.0.3', { ready: false, serving: true, terminating: true })]),
        slice('web-c', 'web', [ep('10.0.0.4'), ep('10.0.0.1')]),
      ],
    );
    const c = out.clusters[0]!;
    expect(summary(c)).toEqual(['10.0.0.1:8080 HEALTHY', '10.0.0.2:8080 HEALTHY', '10.0.0.3:8080 DRAINING', '10.0.0.4:8080 HEALTHY']);
    expect(c.endpoints.find((e) => e.address === '10.0.0.2')!.locality.zone).toBe('b');
  });

  test('the same address on different slice ports is two endpoints; a slice lacking the port contributes nothing', () => {
    const out = slicesToClusters(
      [svc('web', [{ name: 'http', port: 80 }])],
      [
        slice('web-1', 'web', [ep('10.0.0.1')], [{ name: 'http', port: 8080 }]),
        // during a rollout that changes targetPort, one pod can be listed with two ports
        slice('web-2', 'web', [ep('10.0.0.1')], [{ name: 'http', port: 8081 }]),
        slice('web-3', 'web', [ep('10.0.0.9')], [{ name: 'metrics', port: 9100 }]),
        slice('web-4', 'web', [ep('10.0.0.8')], [{ name: 'http', port: null }]),
        slice('web-5', 'web', [ep('10.0.0.7')], []),
      ],
    );
    expect(summary(out.clusters[0]!)).toEqual(['10.0.0.1:8080 HEALTHY', '10.0.0.1:8081 HEALTHY']);
  });

  test('IPv4 and IPv6 slices count, FQDN slices and malformed addresses do not', () => {
    const out = slicesToClusters(
      [svc('web', [{ name: 'http', port: 80 }])],
      [
        slice('web-v4', 'web', [ep('10.0.0.1'), ep('not-an-ip'), ep('fd00::1')]),
        slice('web-v6', 'web', [ep('fd00::2'), ep('10.0.0.5')], undefined, { addressType: 'IPv6' }),
        slice('web-fqdn', 'web', [ep('backend.example.com')], undefined, { addressType: 'FQDN' }),
      ],
    );
    expect(summary(out.clusters[0]!)).toEqual(['10.0.0.1:8080 HEALTHY', 'fd00::2:8080 HEALTHY']);
  });

  test('two slices spelling one IPv6 address two ways give one endpoint: the first slice\'s spelling, the most available health, a warning', () => {
    const slices = [
      slice('web-b', 'web', [ep('fd00::2', { ready: false }), ep('fd00::3')], undefined, { addressType: 'IPv6' }),
      slice('web-a', 'web', [ep('FD00:0:0:0:0:0:0:2')], undefined, { addressType: 'IPv6' }),
    ];
    const out = slicesToClusters([svc('web', [{ name: 'http', port: 80 }])], slices);
    // Slices are taken in name order whatever order they come in: web-a spells it first.
    expect(summary(out.clusters[0]!)).toEqual(['FD00:0:0:0:0:0:0:2:8080 HEALTHY', 'fd00::3:8080 HEALTHY']);
    expect(out.warnings).toEqual(['service shop/web: endpoint fd00::2 (slice web-b) and FD00:0:0:0:0:0:0:2 (slice web-a) are one IPv6 address; merged as FD00:0:0:0:0:0:0:2']);
    expect(slicesToClusters([svc('web', [{ name: 'http', port: 80 }])], [...slices].reverse())).toEqual(out);
  });

  test('zone from the slice endpoint, region (and missing zone) from node labels when given', () => {
    const nodes = nodeTopologies([
      { metadata: { name: 'n1', labels: { 'topology.kubernetes.io/region': 'eu-west-1', 'topology.kubernetes.io/zone': 'eu-west-1a' } } },
      { metadata: { name: 'n2', labels: { 'topology.kubernetes.io/region': 'eu-west-1', 'topology.kubernetes.io/zone': 'eu-west-1b' } } },
      { metadata: { name: 'n3', labels: {} } },
    ]);
    const services = [svc('web', [{ name: 'http', port: 80 }])];
    const slices = [
      slice('web-1', 'web', [
        ep('10.0.0.1', { ready: true }, { zone: 'eu-west-1a', nodeName: 'n1' }),
        ep('10.0.0.2', { ready: true }, { nodeName: 'n2' }),
        ep('10.0.0.3', { ready: true }, { zone: 'z', nodeName: 'n3' }),
        ep('10.0.0.4', { ready: true }, { zone: 'z', nodeName: 'gone' }),
      ]),
    ];
    const localities = (o: ReturnType<typeof slicesToClusters>): string[] =>
      o.clusters[0]!.endpoints.map((e) => `${e.address} ${e.locality.region}/${e.locality.zone}/${e.locality.subZone}`);
    expect(localities(slicesToClusters(services, slices, { nodes }))).toEqual([
      '10.0.0.1 eu-west-1/eu-west-1a/',
      '10.0.0.2 eu-west-1/eu-west-1b/',
      '10.0.0.3 /z/',
      '10.0.0.4 /z/',
    ]);
    expect(localities(slicesToClusters(services, slices))).toEqual(['10.0.0.1 /eu-west-1a/', '10.0.0.2 //', '10.0.0.3 /z/', '10.0.0.4 /z/']);
  });

  test('annotations: lb-policy (any case) with the config-file defaults, hash-header, weighting', () => {
    const ports = [{ name: 'http', port: 80 }];
    const out = slicesToClusters(
      [
        svc('rr', ports),
        svc('lr', ports, { annotations: { 'fulcrum.io/lb-policy': 'LEAST_REQUEST', 'fulcrum.io/weighting': 'pid' } }),
        svc('rh', ports, { annotations: { 'fulcrum.io/lb-policy': 'ring_hash', 'fulcrum.io/hash-header': 'X-User' } }),
        svc('mg', ports, { annotations: { 'fulcrum.io/lb-policy': 'MAGLEV', 'fulcrum.io/weighting': 'EWMA' } }),
        svc('rnd', ports, { annotations: { 'fulcrum.io/lb-policy': 'RANDOM' } }),
      ],
      [],
    );
    expect(byName(out.clusters, 'shop/rr:http')).toMatchObject({ lbPolicy: 'ROUND_ROBIN' });
    expect(byName(out.clusters, 'shop/lr:http')).toMatchObject({
      lbPolicy: 'LEAST_REQUEST',
      leastRequest: { choiceCount: 2 },
      weighting: { kind: 'pid', setpoint: 'mean', metric: 'cpu' },
    });
    expect(byName(out.clusters, 'shop/rh:http')).toMatchObject({
      lbPolicy: 'RING_HASH',
      ringHash: { virtualNodesPerHost: 160, hashFunction: 'XX_HASH' },
    });
    expect(byName(out.clusters, 'shop/mg:http')).toMatchObject({ lbPolicy: 'MAGLEV', maglev: { tableSize: 65_537 }, weighting: { kind: 'ewma' } });
    expect(byName(out.clusters, 'shop/rnd:http')).toMatchObject({ lbPolicy: 'RANDOM' });
    expect(byName(out.clusters, 'shop/rr:http').ringHash).toBeUndefined();
    expect([...out.hashPolicies]).toEqual([['shop/rh:http', { header: 'x-user' }]]);
    expect(out.warnings).toEqual([]);
  });

  test('bad annotation values fall back to the defaults with a warning', () => {
    const out = slicesToClusters(
      [
        svc('web', [{ name: 'http', port: 80 }], {
          annotations: { 'fulcrum.io/lb-policy': 'FASTEST', 'fulcrum.io/hash-header': 'x user', 'fulcrum.io/weighting': 'magic' },
        }),
      ],
      [],
    );
    expect(out.clusters[0]).toMatchObject({ lbPolicy: 'ROUND_ROBIN', weighting: { kind: 'static' } });
    expect(out.hashPolicies.size).toBe(0);
    expect(out.warnings).toHaveLength(3);
    expect(out.warnings[0]).toMatch(/service shop\/web: annotation fulcrum.io\/lb-policy="FASTEST"/);
  });

  test('weighting: a policy name, or the config file\'s weighting block for every option', () => {
    const weighting = (value: string) => {
      const out = slicesToClusters([svc('web', [{ name: 'http', port: 80 }], { annotations: { 'fulcrum.io/weighting': value } })], []);
      return { weighting: out.clusters[0]?.weighting, warnings: out.warnings };
    };
    expect(weighting('adaptive')).toEqual({ weighting: { kind: 'pid', setpoint: 'mean', metric: 'cpu' }, warnings: [] });
    expect(weighting('{policy: pid, setpoint: 0.6, metric: inflight, gains: {kp: 0.5}}')).toEqual({
      weighting: { kind: 'pid', setpoint: 0.6, metric: 'inflight', gains: { kp: 0.5 } },
      warnings: [],
    });
    expect(weighting('{"policy":"ewma","decay":0.3,"explorationBonus":5}').weighting).toEqual({ kind: 'ewma', decay: 0.3, explorationBonus: 5 });
    expect(weighting('{policy: blend, blend: {pid: 0.5, ewma: 0.5}}').weighting).toMatchObject({ kind: 'blend', parts: { pid: 0.5, ewma: 0.5 } });

    const bad = (value: string, problem: RegExp) => {
      const got = weighting(value);
      expect(got.weighting).toEqual({ kind: 'static' });
      expect(got.warnings).toHaveLength(1);
      expect(got.warnings[0]).toMatch(problem);
      expect(got.warnings[0]).toMatch(/expected one of static, pid, adaptive, ewma or a weighting block/);
    };
    bad('{policy: pid, setpoint: 2}', /\/setpoint/);
    bad('{policy: pid, metric: gpu}', /\/metric/);
    bad('{policy: blend, blend: {pid: 0.5}}', /sum to 1/);
    bad('{policy: auto}', /config file/);
    bad('{policy: pid', /not JSON or YAML/);
    bad('magic', /not a policy name/);
  });

  test('deterministic: input order does not matter', () => {
    const services = [svc('b', [{ name: 'http', port: 80 }]), svc('a', [{ name: 'x', port: 1 }, { name: 'http', port: 80 }])];
    const slices = [
      slice('b-2', 'b', [ep('10.0.0.3'), ep('10.0.0.1')]),
      slice('b-1', 'b', [ep('10.0.0.2'), ep('10.0.0.1', { ready: false })]),
      slice('a-1', 'a', [ep('10.0.1.1')], [{ name: 'x', port: 1 }, { name: 'http', port: 2 }]),
    ];
    const one = slicesToClusters(services, slices);
    const two = slicesToClusters([...services].reverse(), [...slices].reverse());
    expect(JSON.stringify(two.clusters)).toBe(JSON.stringify(one.clusters));
    expect(one.clusters.map((c) => c.name)).toEqual(['shop/a:http', 'shop/a:x', 'shop/b:http']);
  });
});

describe('ownership and merging', () => {
  const cluster = (name: string, address = '10.9.9.9'): Cluster => ({
    name,
    lbPolicy: 'ROUND_ROBIN',
    connectTimeoutMs: 1000,
    http2: false,
    weighting: { kind: 'static' },
    endpoints: [{ address, port: 80, weight: 1, priority: 0, health: 'HEALTHY', locality: { region: '', zone: '', subZone: '' } }],
  });

  test('Kubernetes names contain a slash', () => {
    expect(isKubernetesClusterName('shop/web:http')).toBe(true);
    expect(isKubernetesClusterName('web')).toBe(false);
  });

  test('file/API clusters and Kubernetes clusters are merged; an explicit same-named cluster wins and is reported', () => {
    const merged = mergeKubernetesClusters([cluster('web'), cluster('shop/api:http', '10.1.1.1')], [cluster('shop/api:http'), cluster('shop/web:http')]);
    expect(merged.clusters.map((c) => c.name)).toEqual(['shop/api:http', 'shop/web:http', 'web']);
    expect(merged.clusters[0]!.endpoints[0]!.address).toBe('10.1.1.1');
    expect(merged.overridden).toEqual(['shop/api:http']);
  });
});
