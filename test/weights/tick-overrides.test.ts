import { describe, expect, it } from 'vitest';
import { ArrayMap } from '../../src/balancing/engine/indexed-map.js';
import type { ClusterTick, PublishedHealth } from '../../src/balancing/engine/types.js';
import { buildOverrides } from '../../src/weights/tick-overrides.js';

const keys = ['a:1', 'b:1', 'c:1', 'd:1'];
const index = new Map(keys.map((k, i) => [k, i]));
const weightList = [7, 1, 5_000, 7];
const healthList: PublishedHealth[] = ['HEALTHY', 'UNHEALTHY', 'HEALTHY', 'UNHEALTHY'];

const tickOf = (weights: ReadonlyMap<string, number>, health: ReadonlyMap<string, PublishedHealth>): ClusterTick => ({
  weights,
  health,
  changed: true,
  explanations: new Map(),
  failStatic: false,
  setpoint: undefined,
});
/** The same tick as the engine publishes it (positional maps over one key list), and as plain Maps. */
const positional = tickOf(new ArrayMap(keys, index, weightList), new ArrayMap(keys, index, healthList));
const keyed = tickOf(new Map(keys.map((k, i) => [k, weightList[i] as number])), new Map(keys.map((k, i) => [k, healthList[i] as PublishedHealth])));

describe('buildOverrides', () => {
  it('adaptive: every endpoint its weight, UNHEALTHY where probes failed; by position as by key', () => {
    const expected = [
      ['a:1', { weight: 7 }],
      ['b:1', { weight: 1, health: 'UNHEALTHY' }],
      ['c:1', { weight: 5_000 }],
      ['d:1', { weight: 7, health: 'UNHEALTHY' }],
    ];
    for (const t of [positional, keyed]) {
      const o = buildOverrides(t, true);
      expect([...o]).toEqual(expected);
      expect(o.get('b:1')).toEqual({ weight: 1, health: 'UNHEALTHY' });
      expect(o.get('zz:1')).toBeUndefined();
      expect(o.size).toBe(4);
    }
    // Equal overrides are one shared (frozen) object.
    const o = buildOverrides(positional, true);
    expect(o.get('a:1')).toBe(buildOverrides(keyed, true).get('a:1'));
    expect(Object.isFrozen(o.get('a:1'))).toBe(true);
  });

  it('static: only the probe-failed endpoints, UNHEALTHY without a weight', () => {
    for (const t of [positional, keyed]) expect([...buildOverrides(t, false)]).toEqual([['b:1', { health: 'UNHEALTHY' }], ['d:1', { health: 'UNHEALTHY' }]]);
  });
});
