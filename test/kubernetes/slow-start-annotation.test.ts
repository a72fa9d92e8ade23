import { describe, expect, test } from 'vitest';
import { slicesToClusters, type ServiceLike } from '../../src/sources/kubernetes.js';

/** `fulcrum.io/slow-start` → a discovered cluster's Envoy slow start (the config file's slowStart). */

const service = (annotations: Record<string, string>): ServiceLike => ({
  metadata: { name: 'api', namespace: 'shop', labels: { 'fulcrum.io/balance': 'true' }, annotations },
  spec: { ports: [{ name: 'http', port: 80 }, { name: 'admin', port: 81 }] },
});

function mapped(annotations: Record<string, string>) {
  const out = slicesToClusters([service(annotations)], []);
  return { clusters: out.clusters, slowStart: out.clusters[0]?.slowStart, warnings: out.warnings };
}

describe('slow-start annotation', () => {
  test('absent or off: no slow start, no warning', () => {
    expect(mapped({})).toMatchObject({ slowStart: undefined, warnings: [] });
    expect(mapped({ 'fulcrum.io/slow-start': ' OFF ' })).toMatchObject({ slowStart: undefined, warnings: [] });
  });

  test.each([
    ['30s', 30_000],
    ['1500ms', 1_500],
    ['1.5m', 90_000],
    ['2H', 7_200_000],
    ['24h', 86_400_000],
  ])('a window %s is windowMs %d with Envoy defaults, on every port of the Service', (value, windowMs) => {
    const { clusters, warnings } = mapped({ 'fulcrum.io/slow-start': value });
    expect(clusters.map((c) => c.slowStart)).toEqual([{ windowMs }, { windowMs }]);
    expect(warnings).toEqual([]);
  });

  test('the config file block sets aggression and the floor, under LEAST_REQUEST too', () => {
    const { slowStart, warnings } = mapped({
      'fulcrum.io/lb-policy': 'least_request',
      'fulcrum.io/slow-start': '{windowMs: 45000, aggression: 2.5, minWeightPercent: 5}',
    });
    expect(slowStart).toEqual({ windowMs: 45_000, aggression: 2.5, minWeightPercent: 5 });
    expect(warnings).toEqual([]);
    expect(mapped({ 'fulcrum.io/slow-start': '{"windowMs": 1000}' }).slowStart).toEqual({ windowMs: 1_000 });
  });

  test('with an adaptive weighting the cluster keeps both (the newcomer rule then defers to Envoy: cluster-safety.ts)', () => {
    const { slowStart, clusters } = mapped({ 'fulcrum.io/weighting': 'pid', 'fulcrum.io/slow-start': '10s' });
    expect(slowStart).toEqual({ windowMs: 10_000 });
    expect(clusters[0]?.weighting.kind).toBe('pid');
  });

  test.each([
    ['30', 'expected a window such as 30s'],
    ['30 seconds', 'expected a window such as 30s'],
    ['-5s', 'expected a window such as 30s'],
    ['0s', 'the window must be a whole number of ms from 1 to 86400000 (24h)'],
    ['0.5ms', 'the window must be a whole number of ms from 1 to 86400000 (24h)'],
    ['25h', 'the window must be a whole number of ms from 1 to 86400000 (24h)'],
    ['{windowMs: 0}', '/windowMs Expected integer to be greater or equal to 1'],
    ['{windowMs: 1000, aggression: 0}', '/aggression Expected number to be greater than 0'],
    ['{windowMs: 1000, minWeightPercent: 101}', '/minWeightPercent Expected number to be less or equal to 100'],
    ['{windowMs: 1000, ramp: fast}', 'Unexpected property'],
    ['{aggression: 2}', '/windowMs Expected required property'],
    ['{windowMs: [', 'not JSON or YAML'],
  ])('a bad value %j is a warning and no slow start', (value, problem) => {
    const { clusters, warnings } = mapped({ 'fulcrum.io/slow-start': value });
    expect(clusters.map((c) => c.slowStart)).toEqual([undefined, undefined]);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(`service shop/api: annotation fulcrum.io/slow-start=${JSON.stringify(value)}: `);
    expect(warnings[0]).toContain(problem);
    expect(warnings[0]).toMatch(/; no slow start$/);
  });

  test.each(['RING_HASH', 'MAGLEV', 'RANDOM', 'CLIENT_SIDE_WEIGHTED_ROUND_ROBIN'])('under %s (Envoy has no slow start there) it is a warning, once per Service', (policy) => {
    const { clusters, warnings } = mapped({ 'fulcrum.io/lb-policy': policy, 'fulcrum.io/slow-start': '30s' });
    expect(clusters.map((c) => c.slowStart)).toEqual([undefined, undefined]);
    expect(warnings).toEqual([`service shop/api: annotation fulcrum.io/slow-start needs lb-policy ROUND_ROBIN or LEAST_REQUEST (is ${policy}); no slow start`]);
  });
});
