import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HEALTH_STATUSES, LB_POLICIES, type Endpoint } from '../../src/catalog/types.js';
import type { EndpointOverride } from '../../src/catalog/weight-overrides.js';
import { encodeAssignment } from '../../src/xds/assignment-encoding.js';
import { encodeMessage, envoyType } from '../../src/xds/envoy-api.js';
import { assignmentLayout, loadAssignmentResource } from '../../src/xds/translate-clusters.js';
import { cluster, endpoint } from '../catalog/helpers.js';

const ASSIGNMENT = 'envoy.config.endpoint.v3.ClusterLoadAssignment';

/** What protobufjs writes for the same assignment: the bytes the direct encoder must match. */
const viaProtobufjs = (c: Parameters<typeof loadAssignmentResource>[0], o?: ReadonlyMap<string, EndpointOverride>): Buffer =>
  Buffer.from(encodeMessage(ASSIGNMENT, loadAssignmentResource(c, o)));

/** Strings as localities and names may hold them: empty, ASCII, beyond ASCII (2-, 3- and 4-byte UTF-8), and past protobufjs' 40-character split. */
const text = fc.oneof(
  fc.constantFrom('', 'eu', 'us-east-1a', 'zoné', '区域', '🚀rack', 'x'.repeat(39), 'y'.repeat(40), `é${'z'.repeat(45)}`),
  fc.string({ maxLength: 50, unit: 'grapheme' }),
);

const endpointArb: fc.Arbitrary<Endpoint> = fc.record({
  address: fc.oneof(fc.ipV4(), fc.ipV6(), fc.domain()),
  port: fc.oneof(fc.constantFrom(0, 1, 127, 128, 16_383, 16_384, 65_535), fc.integer({ min: 0, max: 65_535 })),
  weight: fc.oneof(fc.integer({ min: 1, max: 300 }), fc.constantFrom(127, 128, 2 ** 21, 2 ** 28, 2 ** 32 - 1), fc.double({ min: 1, max: 2 ** 31, noNaN: true })),
  priority: fc.integer({ min: 0, max: 4 }),
  health: fc.constantFrom(...HEALTH_STATUSES),
  locality: fc.record({ region: text, zone: text, subZone: text }),
});

const overrideArb: fc.Arbitrary<EndpointOverride> = fc.record(
  { weight: fc.oneof(fc.double({ min: 0, max: 2 ** 33, noNaN: true }), fc.integer({ min: 0, max: 1000 })), health: fc.constantFrom('UNHEALTHY', 'DRAINING') },
  { requiredKeys: [] },
) as fc.Arbitrary<EndpointOverride>;

const clusterArb = fc
  .record({
    name: fc.oneof(fc.constantFrom('c', 'svc-a', 'ø'.repeat(41)), text.filter((s) => s.length > 0)),
    lbPolicy: fc.constantFrom(...LB_POLICIES),
    endpoints: fc.array(endpointArb, { maxLength: 40 }),
  })
  .chain((c) =>
    fc.record({
      c: fc.constant(cluster(c.name, c.endpoints, { lbPolicy: c.lbPolicy })),
      overrides: fc.option(fc.array(fc.tuple(fc.nat({ max: Math.max(0, c.endpoints.length - 1) }), overrideArb)), { nil: undefined }),
    }),
  );

describe('encodeAssignment', () => {
  it('writes the bytes protobufjs writes for the same assignment', () => {
    fc.assert(
      fc.property(clusterArb, ({ c, overrides }) => {
        const o = overrides && new Map(overrides.flatMap(([i, v]) => (c.endpoints[i] ? [[`${c.endpoints[i].address}:${c.endpoints[i].port}`, v] as const] : [])));
        const direct = encodeAssignment(assignmentLayout(c, o));
        expect(direct.toString('hex')).toBe(viaProtobufjs(c, o).toString('hex'));
      }),
      { numRuns: 400 },
    );
  });

  it('writes a locality with no name as an empty message and the default priority not at all, as protobufjs does', () => {
    const c = cluster('edge', [endpoint('10.0.0.1', 80, { locality: { region: '', zone: '', subZone: '' }, health: 'UNKNOWN' })]);
    const direct = encodeAssignment(assignmentLayout(c));
    expect(direct.equals(viaProtobufjs(c))).toBe(true);
    const decoded = envoyType(ASSIGNMENT).toObject(envoyType(ASSIGNMENT).decode(direct), { enums: String, defaults: false }) as Record<string, unknown>;
    expect(decoded).toEqual({
      cluster_name: 'edge',
      endpoints: [
        {
          locality: {},
          lb_endpoints: [{ endpoint: { address: { socket_address: { address: '10.0.0.1', port_value: 80 } } }, health_status: 'UNKNOWN', load_balancing_weight: { value: 1 } }],
          load_balancing_weight: { value: 1 },
        },
      ],
    });
  });

  it('writes the ranks of priorities and the fitted weights of a priority past 2^32−1', () => {
    const heavy = (i: number, priority: number) => endpoint(`10.0.0.${i}`, 80, { weight: 2 ** 31, priority, locality: { region: 'r', zone: `z${i % 2}`, subZone: '' } });
    const c = cluster('heavy', [heavy(1, 7), heavy(2, 7), heavy(3, 3), heavy(4, 3)], { lbPolicy: 'RING_HASH' });
    const direct = encodeAssignment(assignmentLayout(c));
    expect(direct.equals(viaProtobufjs(c))).toBe(true);
    const decoded = envoyType(ASSIGNMENT).decode(direct) as unknown as { endpoints: { priority: number; lb_endpoints: { load_balancing_weight: { value: number } }[] }[] };
    expect(decoded.endpoints.map((g) => g.priority)).toEqual([0, 0, 1, 1]);
    const priority0 = decoded.endpoints.slice(0, 2).flatMap((g) => g.lb_endpoints.map((e) => e.load_balancing_weight.value));
    expect(priority0.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(2 ** 32 - 1);
  });
});
