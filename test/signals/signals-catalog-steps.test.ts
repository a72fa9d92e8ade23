import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { Signals } from '../../src/signals/signals.js';
import type { Catalog } from '../../src/catalog/types.js';
import { cluster, endpoint } from '../catalog/helpers.js';

const ip = (i: number): string => `10.2.${i >> 8}.${i & 255}`;
const catalogOf = (from: number, to: number): Catalog => ({
  clusters: [cluster('small', [endpoint('10.9.0.1')]), cluster('big', Array.from({ length: to - from }, (_, j) => endpoint(ip(from + j))))],
  listeners: [],
  nodeGroups: [],
});
/** Whether a report for the big cluster's endpoint i is accepted (the signals know it). */
const knows = (s: Signals, i: number): boolean => s.ingest({ samples: [{ cluster: 'big', endpoint: `${ip(i)}:8080`, rps: 1 }] }).accepted === 1;

describe('Signals.setCatalogSteps', () => {
  it('knows the old endpoints until its last step, then exactly what setCatalog gives', () => {
    const [stepped, whole] = [0, 1].map(() => new Signals({ log: pino({ level: 'silent' }), lrsIntervalMs: 10_000 })) as [Signals, Signals];
    for (const s of [stepped, whole]) s.setCatalog(catalogOf(0, 3_000));
    const next = catalogOf(1_000, 4_000);
    const steps = stepped.setCatalogSteps(next, 500);
    let count = 0;
    for (let step = steps.next(); step.done !== true; step = steps.next()) {
      count++;
      expect([knows(stepped, 10), knows(stepped, 3_500)]).toEqual([true, false]);
    }
    whole.setCatalog(next);
    expect(count).toBeGreaterThanOrEqual(6);
    for (const i of [10, 999, 1_000, 2_999, 3_000, 3_999, 4_000]) expect(knows(stepped, i)).toBe(knows(whole, i));
    expect(knows(stepped, 3_500)).toBe(true);
    for (const s of [stepped, whole]) s.stop();
  });
});
