import { describe, expect, it } from 'vitest';
import { judgeOutliers, medianWithout, type EjectionVerdict } from '../../../src/balancing/engine/tick/ejection.js';
import type { ErrorReading } from '../../../src/balancing/engine/error-window.js';
import { EJECTION_DEFAULTS, type EjectionSettings } from '../../../src/balancing/engine/types.js';

/*
 * The outlier detector judges readings as vectors, with an insertion sort for a cluster's handful
 * and a skip when no reading could trip a rule (src/balancing/engine/tick/ejection.ts). Its
 * verdicts must be those of the straightforward judgement it replaced, kept here as the
 * reference: an array of reading objects, σ by reduce, one Array.prototype.sort.
 */
function reference(readings: readonly (ErrorReading | undefined)[], total: number, alreadyEjected: number, s: EjectionSettings): EjectionVerdict[] {
  const judgedRate = (r: ErrorReading): boolean => r.requests >= s.minRequests && !Number.isNaN(r.rate);
  const rates: number[] = [];
  for (const r of readings) if (r !== undefined && judgedRate(r)) rates.push(r.rate);
  const mean = rates.reduce((a, b) => a + b, 0) / rates.length;
  const sigma = rates.length < 2 ? 0 : Math.sqrt(rates.reduce((a, x) => a + (x - mean) ** 2, 0) / rates.length);
  const sorted = rates.slice().sort((a, b) => a - b);
  const overall = rates.length >= 64 ? medianWithout(sorted, undefined) : undefined;
  const fine = (peers: number, threshold: number): boolean => Number.isNaN(peers) || peers < threshold / 2;
  const verdicts: EjectionVerdict[] = [];
  readings.forEach((r, index) => {
    if (r === undefined || (r.requests === 0 && r.lastRequests === 0)) return;
    const peers = overall ?? medianWithout(sorted, judgedRate(r) ? r.rate : undefined);
    if (r.lastRequests >= Math.max(1, s.minRequests / 4) && r.lastRate >= s.allFailingRatio && fine(peers, s.allFailingRatio)) {
      verdicts.push({ index, reason: 'all-failing', severity: 1 + r.lastRate });
      return;
    }
    if (r.requests < s.minRequests || Number.isNaN(r.rate)) return;
    if (r.rate >= s.failureRatio && fine(peers, s.failureRatio)) {
      verdicts.push({ index, reason: 'failure-percentage', severity: r.rate });
      return;
    }
    const gap = Math.max(s.successRateStdevFactor * sigma, s.minGap);
    if (rates.length >= 3 && !Number.isNaN(peers) && 1 - r.rate < 1 - peers - gap) verdicts.push({ index, reason: 'success-rate', severity: r.rate });
  });
  const cap = total >= 2 ? Math.max(1, Math.floor(s.maxEjectedRatio * total)) : 0;
  const serving = readings.filter((r) => r !== undefined).length;
  const room = Math.max(0, Math.min(cap - alreadyEjected, serving - 1));
  return verdicts.sort((a, b) => b.severity - a.severity).slice(0, room);
}

/** Index, rule and severity (bit for bit) of each verdict. */
const summary = (vs: readonly EjectionVerdict[]): string[] => vs.map((v) => `${v.index} ${v.reason.split(':')[0]} ${Object.is(v.severity, -0) ? '-0' : v.severity}`);

describe('judgeOutliers (vectors, insertion sort, skip when nothing can trip)', () => {
  it('gives the verdicts of the reference judgement, in order, to the bit', () => {
    let seed = 11;
    const rand = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    let ejecting = 0;
    const rules = new Set<string>();
    for (let trial = 0; trial < 3000; trial++) {
      // Up to 80 endpoints: past the insertion sort's 32 and the overall median's 64.
      const n = 1 + Math.floor(rand() * (trial % 5 === 0 ? 80 : 25));
      // A healthy base rate per cluster, a few outliers, ties (coarse rates in half the trials).
      const base = rand() * 0.08;
      const rateOf = (): number => {
        // Outliers anywhere, or just past the success-rate rule's minimum gap (0.1 by default).
        const u = rand();
        const x = u < 0.05 ? rand() : u < 0.15 ? base + 0.07 + rand() * 0.1 : base + rand() * 0.05;
        return trial % 2 === 0 ? Math.round(x * 20) / 20 : Math.min(1, x);
      };
      const readings = Array.from({ length: n }, (): ErrorReading | undefined => {
        if (rand() < 0.1) return undefined;
        const requests = rand() < 0.15 ? rand() * 25 : 20 + rand() * 200;
        const lastRate = rand() < 0.05 ? 0.95 + rand() * 0.05 : rateOf();
        return { rate: requests === 0 ? Number.NaN : rateOf(), requests, lastRate, lastRequests: rand() * 60 };
      });
      // Every fourth trial: the success-rate rule's edge, all at one rate but one just about
      // minGap above it (where the skip's bound is tight).
      if (trial % 4 === 1) {
        const edge = base + EJECTION_DEFAULTS.minGap + [-1e-12, 0, 1e-12, 1e-3][Math.floor(rand() * 4)]!;
        readings.forEach((r, i) => {
          if (r !== undefined) readings[i] = { ...r, rate: i === 0 ? edge : base, requests: 100, lastRate: base };
        });
      }
      const already = Math.floor(rand() * 3);
      const settings = trial % 3 === 0 && trial % 4 !== 1 ? { ...EJECTION_DEFAULTS, minGap: 0.02 + rand() * 0.2 } : EJECTION_DEFAULTS;
      const want = reference(readings, n + already, already, settings);
      if (want.length > 0) ejecting++;
      for (const v of want) rules.add(v.reason);
      expect(summary(judgeOutliers(readings, n + already, already, settings)), `trial ${trial}`).toEqual(summary(want));
    }
    // Both kinds of cluster were judged: some with verdicts, most without.
    expect(ejecting).toBeGreaterThan(300);
    expect(ejecting).toBeLessThan(2700);
    expect([...rules].sort()).toEqual(['all-failing', 'failure-percentage', 'success-rate']);
  });
});
