import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { choosePolicy, LOCALITY_TIER_THRESHOLD } from '../../../src/catalog/auto-policy.js';
import { validatePolicy } from '../../../src/balancing/engine/stages.js';

describe('choosePolicy: the decision table', () => {
  it('no trait: round robin with static weights', () => {
    expect(choosePolicy({ endpointCount: 5 })).toMatchObject({ lbPolicy: 'ROUND_ROBIN', weighting: { kind: 'static' }, localityTiered: false });
  });

  it('session affinity → RING_HASH on the header or cookie, static weights', () => {
    const byHeader = choosePolicy({ endpointCount: 10, sessionAffinity: { header: 'x-user' } });
    expect(byHeader).toMatchObject({ lbPolicy: 'RING_HASH', hashKey: { header: 'x-user' }, weighting: { kind: 'static' } });
    expect(choosePolicy({ endpointCount: 10, sessionAffinity: { cookie: 'sid' } }).hashKey).toEqual({ cookie: 'sid' });
    expect(choosePolicy({ endpointCount: 10, sessionAffinity: { header: 'x-user', cookie: 'sid' } }).hashKey).toEqual({ header: 'x-user' });
    expect(() => choosePolicy({ endpointCount: 10, sessionAffinity: {} })).toThrow(/header or a cookie/);
  });

  it('heterogeneous capacity → PID weights (equalize cpu) under LEAST_REQUEST', () => {
    expect(choosePolicy({ endpointCount: 10, heterogeneousCapacity: true })).toMatchObject({
      lbPolicy: 'LEAST_REQUEST',
      weighting: { kind: 'pid', setpoint: 'mean', metric: 'cpu-latency' },
    });
  });

  it('long-lived connections → LEAST_REQUEST', () => {
    expect(choosePolicy({ endpointCount: 10, longLivedConnections: true }).lbPolicy).toBe('LEAST_REQUEST');
  });

  it('latency-sensitive → PID weights that count latency above the cluster median as load, under LEAST_REQUEST', () => {
    const p = choosePolicy({ endpointCount: 10, latencySensitive: true });
    expect(p.weighting).toEqual({ kind: 'pid', setpoint: 'mean', metric: 'cpu-latency' });
    expect(p.lbPolicy).toBe('LEAST_REQUEST');
  });

  it('1000+ endpoints → locality-tiered', () => {
    expect(choosePolicy({ endpointCount: LOCALITY_TIER_THRESHOLD - 1 }).localityTiered).toBe(false);
    const big = choosePolicy({ endpointCount: LOCALITY_TIER_THRESHOLD });
    expect(big.localityTiered).toBe(true);
    expect(big.reason).toMatch(/locality-tiered/);
  });

  describe('precedence', () => {
    it('affinity wins the LB policy and forces static weights over every other trait', () => {
      const p = choosePolicy({
        endpointCount: 10,
        sessionAffinity: { cookie: 'sid' },
        heterogeneousCapacity: true,
        longLivedConnections: true,
        latencySensitive: true,
      });
      expect(p.lbPolicy).toBe('RING_HASH');
      expect(p.weighting).toEqual({ kind: 'static' });
      expect(p.reason).toMatch(/precedence over heterogeneous capacity/);
    });

    it('large affinity clusters use MAGLEV', () => {
      expect(choosePolicy({ endpointCount: 5_000, sessionAffinity: { header: 'x-user' } })).toMatchObject({ lbPolicy: 'MAGLEV', localityTiered: true });
    });

    it('long-lived picks the LB policy while capacity/latency pick the weighting', () => {
      expect(choosePolicy({ endpointCount: 10, longLivedConnections: true, heterogeneousCapacity: true })).toMatchObject({
        lbPolicy: 'LEAST_REQUEST',
        weighting: { kind: 'pid' },
      });
      expect(choosePolicy({ endpointCount: 10, heterogeneousCapacity: true, latencySensitive: true }).weighting).toMatchObject({
        kind: 'pid',
        metric: 'cpu-latency',
      });
    });
  });

  it('property: every choice is a valid policy with a reason', () => {
    fc.assert(
      fc.property(
        fc.record(
          {
            sessionAffinity: fc.oneof(fc.record({ header: fc.constant('x-k') }), fc.record({ cookie: fc.constant('c') })),
            heterogeneousCapacity: fc.boolean(),
            longLivedConnections: fc.boolean(),
            latencySensitive: fc.boolean(),
            endpointCount: fc.nat(100_000),
          },
          { requiredKeys: ['endpointCount'] },
        ),
        (traits) => {
          const p = choosePolicy(traits);
          expect(() => validatePolicy(p.weighting)).not.toThrow();
          expect(p.reason.length).toBeGreaterThan(0);
          expect(p.localityTiered).toBe(traits.endpointCount >= LOCALITY_TIER_THRESHOLD);
          expect(p.hashKey !== undefined).toBe(p.lbPolicy === 'RING_HASH' || p.lbPolicy === 'MAGLEV');
        },
      ),
    );
  });

  it('rejects a bad endpoint count', () => {
    expect(() => choosePolicy({ endpointCount: -1 })).toThrow(RangeError);
    expect(() => choosePolicy({ endpointCount: 1.5 })).toThrow(RangeError);
  });
});
