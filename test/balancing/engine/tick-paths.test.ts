/**
 * The engine's tick has parallel paths that must give the same weights: a whole tick and a tick in
 * steps (startClusterTick), and the PID's cpu metric (steerRange/errorRange, pid.ts) beside the
 * general one (steered/errorTerms), which cpu-latency takes; without latency reports the two read
 * the same cpu and must agree to the bit. The speed work of pass 41 (337bb5f, 8529a6b, 70b58a0,
 * 5f1048b, 87c4c95, c8d5ba4) moved error terms, cpu totals, failing counts and the stall gate
 * between passes; these properties hold them to one result under errors, stalls, missed reports,
 * endpoint set changes and error-window changes.
 */
import fc from 'fast-check';
import { expect, it } from 'vitest';
import { WeightEngine } from '../../../src/balancing/engine/weight-engine.js';
import type { ClusterTick, Sample, WeightingPolicy } from '../../../src/balancing/engine/types.js';

type Report = Omit<Sample, 'at'> & { readonly skip: boolean };

const reportArb: fc.Arbitrary<Report> = fc
  .record({
    cpu: fc.option(fc.double({ min: 0, max: 1, noNaN: true }), { nil: undefined }),
    rps: fc.option(fc.integer({ min: 0, max: 200 }), { nil: undefined }),
    errors: fc.integer({ min: 0, max: 200 }),
    skip: fc.boolean(),
    stalled: fc.boolean(),
    inflight: fc.integer({ min: 0, max: 60 }),
    latencyMs: fc.option(fc.double({ min: 0.1, max: 500, noNaN: true }), { nil: undefined }),
  })
  .map((r): Report => {
    if (r.rps === undefined) return { cpu: r.cpu, latencyMs: r.latencyMs, skip: r.skip };
    const errors = Math.min(r.errors, r.rps);
    return { cpu: r.cpu, rps: r.rps, errors, successes: r.stalled ? 0 : r.rps - errors, inflight: r.inflight, latencyMs: r.latencyMs, skip: r.skip };
  });

const runsArb = (ticks: number): fc.Arbitrary<Report[][]> =>
  fc.integer({ min: 3, max: 7 }).chain((n) => fc.array(fc.array(reportArb, { minLength: n, maxLength: n }), { minLength: ticks, maxLength: ticks + 8 }));

const keysOf = (n: number): string[] => Array.from({ length: n }, (_, i) => `10.0.0.${i}:80`);

function tickOnce(en: WeightEngine, now: number, name: string, chunk: number | undefined): ClusterTick | undefined {
  if (chunk === undefined) return en.tickClusters(now, [name]).clusters.get(name);
  const run = en.startClusterTick(now, name, chunk);
  while (!run.step()) {
    // each step is part of the same tick
  }
  return run.result;
}

const printed = (name: string, t: ClusterTick | undefined): string => JSON.stringify([name, [...(t?.weights ?? new Map())], [...(t?.health ?? new Map())]]);

/** Every tick's published weights and health, for two clusters fed alike, with the endpoint set and error window changed on the way. */
function ticks(policy: WeightingPolicy, reports: readonly Report[][], chunk: number | undefined, staleAfterMs: number): string[] {
  const keys = keysOf((reports[0] as Report[]).length);
  const safety = { staleAfterMs, decayAfterMs: Math.max(staleAfterMs, 8000) };
  const en = new WeightEngine();
  en.setCluster('svc', keys.map((key, i) => ({ key, weight: 1 + (i % 2) })), policy, safety, { minRequests: 5 });
  en.setCluster('other', keys.map((key) => ({ key, weight: 1 })), policy, { staleAfterMs: 9000, decayAfterMs: 30_000 }, { minRequests: 50 });
  const out: string[] = [];
  reports.forEach((row, t) => {
    const now = (t + 1) * 1000;
    row.forEach(({ skip, ...r }, i) => {
      if (skip) return;
      en.observeSample('svc', keys[i] as string, { at: now, ...r });
      en.observeSample('other', keys[i] as string, { at: now, ...r });
    });
    if (t === 7) en.setCluster('svc', [...keys].reverse().slice(1).map((key) => ({ key, weight: 1 })), policy, safety, { minRequests: 5 });
    if (t === 12) en.setCluster('svc', keys.map((key) => ({ key, weight: 1 })), policy, safety, { minRequests: 5, errorWindowMs: 7000 });
    for (const name of ['svc', 'other']) out.push(printed(name, tickOnce(en, now, name, chunk)));
  });
  return out;
}

const POLICIES: WeightingPolicy[] = [
  { kind: 'pid', setpoint: 'mean', metric: 'cpu' },
  { kind: 'pid', setpoint: 0.6, metric: 'cpu', errorPenalty: 0 },
  { kind: 'pid', setpoint: 'mean', metric: 'cpu-latency' },
  { kind: 'pid', setpoint: 'mean', metric: 'latency', errorPenalty: 2 },
  { kind: 'ewma' },
  { kind: 'blend', parts: { pid: 0.5, ewma: 0.5 } },
];

/**
 * The reports with every cpu a tenth of what it was: below lowLoadHold, where the PID rests and only
 * an endpoint earning its share back moves (the one left out at tick 7 is a newcomer at tick 12).
 */
const quiet = (reports: Report[][]): Report[][] => reports.map((row) => row.map((r) => ({ ...r, cpu: r.cpu === undefined ? undefined : r.cpu / 10 })));

it('a tick in steps of any size publishes what a whole tick does', () => {
  fc.assert(
    fc.property(runsArb(14), fc.constantFrom(...POLICIES), fc.constantFrom(1, 2, 3), fc.constantFrom(500, 2500, 5000), fc.boolean(), (runs, policy, chunk, stale, low) => {
      const reports = low ? quiet(runs) : runs;
      expect(ticks(policy, reports, chunk, stale)).toEqual(ticks(policy, reports, undefined, stale));
    }),
    { seed: 11, numRuns: 200 },
  );
});

it('the PID on cpu publishes what cpu-latency does without latency reports (the cpu path and the general one)', () => {
  const noLatency = (reports: Report[][]): Report[][] => reports.map((row) => row.map(({ latencyMs: _, ...r }) => r));
  fc.assert(
    fc.property(runsArb(14), fc.constantFrom<'mean' | number>('mean', 0.6), fc.constantFrom(0, 1, 3), fc.constantFrom(2500, 5000), (reports, setpoint, errorPenalty, stale) => {
      const plain = noLatency(reports);
      const cpu = ticks({ kind: 'pid', setpoint, metric: 'cpu', errorPenalty }, plain, undefined, stale);
      expect(ticks({ kind: 'pid', setpoint, metric: 'cpu-latency', errorPenalty }, plain, undefined, stale)).toEqual(cpu);
      expect(ticks({ kind: 'pid', setpoint, metric: 'cpu', errorPenalty }, plain, 2, stale)).toEqual(cpu);
    }),
    { seed: 7, numRuns: 150 },
  );
});
