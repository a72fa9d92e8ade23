/**
 * Headline demo of adaptive weights: a real Envoy in front of 6 backends of unequal capacity
 * (two of them 2×), an open-loop load at ~70% of the total capacity, once per weighting policy
 * (static round robin, pid, ewma, blend). One 2× backend loses half its capacity mid-run.
 *
 *   npx tsx bench/demo/run.ts                                  # all four policies, ~4 min
 *   npx tsx bench/demo/run.ts --policies static,pid --steady 20 --after 15
 *   npx tsx bench/demo/run.ts --pid '{"gains":{"kp":1}}' --safety '{"maxStepRatio":1.5}' --label tuned
 *   npx tsx bench/demo/run.ts --publish                        # also copy the SVGs to bench/demo/results/
 *
 * Signals: Envoy's load reports (LRS) bring the backends' ORCA cpu_utilization and request
 * counts to fulcrum; for the policies that need latency (ewma, blend) an agent (agent.ts) also
 * reports each backend's mean latency (and its utilization as cpu) over gRPC ReportService.
 *
 * Prints a table per policy and one JSON line; writes per-policy SVGs (weight share and
 * utilization of every backend over time), a max/avg comparison SVG and the raw timelines
 * (JSON, with fulcrum's explanations) to --out. Not a test: figures, not pass/fail.
 */
import { execFileSync } from 'node:child_process';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { convergence, imbalance, latencySummary, maxOverAvg, mean, weightChanges, type Imbalance, type LatencySummary } from './metrics.js';
import { runScenario, type PolicyName, type ScenarioResult } from './scenario.js';
import { PALETTE, renderChart, type Series } from './svg.js';
import { helpIfAsked } from '../help.js';
import { runMain } from '../run-main.js';

helpIfAsked(import.meta.url);
const { values: args } = parseArgs({
  options: {
    policies: { type: 'string', default: 'static,pid,ewma,blend' },
    capacities: { type: 'string', default: '60,60,60,60,120,120' },
    load: { type: 'string', default: '0.7' },
    /** Target mean service time of a queueing backend, ms (workers = capacity × this). */
    'base-latency': { type: 'string', default: '50' },
    steady: { type: 'string', default: '30' },
    after: { type: 'string', default: '20' },
    /** Steady-state window: the last N seconds before the halving. */
    window: { type: 'string', default: '12' },
    halve: { type: 'string', default: '5' },
    /** The shipped defaults: engine tick 1 s, LRS every 2 s. */
    tick: { type: 'string', default: '1000' },
    lrs: { type: 'string', default: '2000' },
    sample: { type: 'string', default: '500' },
    /** JSON merged into the policy's weighting block, e.g. '{"gains":{"kp":1}}'. */
    pid: { type: 'string' },
    ewma: { type: 'string' },
    blend: { type: 'string' },
    /** JSON safety block for every adaptive policy, e.g. '{"maxStepRatio":1.5,"hysteresis":0.01}'. */
    safety: { type: 'string' },
    /** The agent reports latency only (no cpu). */
    'agent-latency-only': { type: 'boolean', default: false },
    /** Run the agent for pid too (default: only for ewma and blend). */
    'agent-always': { type: 'boolean', default: false },
    label: { type: 'string', default: '' },
    out: { type: 'string', default: fileURLToPath(new URL('./out/', import.meta.url)) },
    publish: { type: 'boolean', default: false },
    /** Re-render the SVGs and the table from the JSON of an earlier run in --out (no measurement). */
    replot: { type: 'boolean', default: false },
  },
});

const log = (s: string): void => {
  process.stderr.write(`${s}\n`);
};
const num = (name: string, v: string | undefined): number => {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`--${name}: not a number: ${v}`);
  return n;
};
const json = (name: string, v: string | undefined): Record<string, unknown> => {
  if (v === undefined) return {};
  const parsed: unknown = JSON.parse(v);
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error(`--${name}: expected a JSON object`);
  return parsed as Record<string, unknown>;
};

const POLICIES: readonly PolicyName[] = ['static', 'pid', 'ewma', 'blend'];
const policies = (args.policies ?? '').split(',').map((p) => p.trim()).filter((p) => p !== '') as PolicyName[];
for (const p of policies) if (!POLICIES.includes(p)) throw new Error(`--policies: unknown policy ${p} (${POLICIES.join(', ')})`);
const capacities = (args.capacities ?? '').split(',').map((c) => num('capacities', c));
const steadyS = num('steady', args.steady);
const afterS = num('after', args.after);
const windowS = num('window', args.window);
const halve = num('halve', args.halve);
const safety = args.safety !== undefined ? json('safety', args.safety) : undefined;

const WEIGHTING: Record<PolicyName, Record<string, unknown>> = {
  static: { policy: 'static' },
  pid: { policy: 'pid', setpoint: 'mean', metric: 'cpu', ...json('pid', args.pid) },
  ewma: { policy: 'ewma', ...json('ewma', args.ewma) },
  blend: { policy: 'blend', setpoint: 'mean', metric: 'cpu', blend: { pid: 0.5, ewma: 0.5 }, ...json('blend', args.blend) },
};

interface PolicyFigures {
  readonly policy: PolicyName;
  readonly weighting: Record<string, unknown>;
  readonly steady: Imbalance;
  readonly afterHalving: Imbalance;
  readonly latencySteady: LatencySummary;
  readonly latencyAfter: LatencySummary;
  /** The last 8 s of the run: after the halving, once settled (or not). */
  readonly latencyLate: LatencySummary;
  readonly latencyAll: LatencySummary;
  /** Threshold used for convergence: max(1.05, steady per-tick max/avg + 0.03). */
  readonly threshold: number;
  /** Seconds from load start until max/avg ≤ threshold for 3 s (from equal weights). */
  readonly convergeFromStartS: number | undefined;
  /** Seconds from the halving until max/avg ≤ threshold for 3 s. */
  readonly convergeAfterHalvingS: number | undefined;
  /** Seconds from the halving until max/avg ≤ 1.05 for 3 s (the absolute target). */
  readonly convergeTo105S: number | undefined;
  readonly envoyWeightVectors: number;
  readonly diagnostics: ScenarioResult['diagnostics'];
}

function figures(r: ScenarioResult, weighting: Record<string, unknown>): PolicyFigures {
  const end = steadyS + afterS;
  const steady = imbalance(r.ticks, steadyS - windowS, steadyS);
  const threshold = Math.max(1.05, steady.maxAvgTick + 0.03);
  return {
    policy: r.policy,
    weighting,
    steady,
    afterHalving: imbalance(r.ticks, end - 8, end),
    latencySteady: latencySummary(r.latencies, steadyS - windowS, steadyS),
    latencyAfter: latencySummary(r.latencies, steadyS, end),
    latencyLate: latencySummary(r.latencies, end - 8, end),
    latencyAll: latencySummary(r.latencies, 0, end),
    threshold,
    convergeFromStartS: convergence(r.ticks, 0, steadyS, threshold),
    convergeAfterHalvingS: convergence(r.ticks, steadyS, end, threshold),
    convergeTo105S: convergence(r.ticks, steadyS, end, 1.05),
    envoyWeightVectors: weightChanges(r.ticks),
    diagnostics: r.diagnostics,
  };
}

const f2 = (v: number): string => (Number.isFinite(v) ? v.toFixed(2) : '–');
const f3 = (v: number): string => (Number.isFinite(v) ? v.toFixed(3) : '–');
const f0 = (v: number): string => (Number.isFinite(v) ? v.toFixed(0) : '–');
const fs = (v: number | undefined, cap: number): string => (v === undefined ? `> ${cap.toFixed(0)} s` : `${v.toFixed(1)} s`);

function table(all: readonly PolicyFigures[]): string {
  const rr = all.find((f) => f.policy === 'static');
  const rel = (v: number, base: number | undefined): string =>
    base === undefined || !Number.isFinite(base) || base === 0 ? '' : ` (${((v / base - 1) * 100).toFixed(0)}%)`;
  const rows = [
    '| policy | max/avg steady (time-avg / per-tick) | p95/avg steady | p50 / p99 ms steady | p99 ms after halving (all 20 s / last 8 s) | max/avg after halving (last 8 s) | converge after halving (≤ thr / ≤ 1.05) | converge from start | Envoy weight vectors | achieved rps | failed requests |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const f of all) {
    const isStatic = f.policy === 'static';
    rows.push(
      `| ${f.policy} | ${f3(f.steady.maxAvgMean)} / ${f3(f.steady.maxAvgTick)} | ${f3(f.steady.p95AvgMean)} / ${f3(f.steady.p95AvgTick)} | ` +
        `${f0(f.latencySteady.p50)} / ${f0(f.latencySteady.p99)}${isStatic ? '' : rel(f.latencySteady.p99, rr?.latencySteady.p99)} | ` +
        `${f0(f.latencyAfter.p99)} / ${f0(f.latencyLate.p99)}${isStatic ? '' : rel(f.latencyLate.p99, rr?.latencyLate.p99)} | ${f3(f.afterHalving.maxAvgMean)} / ${f3(f.afterHalving.maxAvgTick)} | ` +
        `${isStatic ? 'n/a (no controller)' : `${fs(f.convergeAfterHalvingS, afterS)} (thr ${f2(f.threshold)}) / ${fs(f.convergeTo105S, afterS)}`} | ` +
        `${isStatic ? 'n/a' : fs(f.convergeFromStartS, steadyS)} | ${f.envoyWeightVectors} | ${f0(f.latencyAll.achievedRps)} | ${f.latencyAll.errors} / ${f.latencyAll.count} |`,
    );
  }
  return rows.join('\n');
}

/** What the charts need of a run (a ScenarioResult, or one read back from its JSON with --replot). */
type Plotted = Pick<ScenarioResult, 'policy' | 'ticks' | 'targetRps'>;

function chartFor(r: Plotted, f: PolicyFigures): string {
  const n = capacities.length;
  const label = (i: number): string => `b${i} (${capacities[i]} rps${i === halve ? ' → ' + (capacities[i] as number) / 2 : ''})`;
  const share: Series[] = [];
  const util: Series[] = [];
  for (let i = 0; i < n; i++) {
    const color = PALETTE[i % PALETTE.length] as string;
    share.push({
      label: label(i),
      color,
      points: r.ticks.map((k) => {
        const total = k.envoyWeight.reduce((a, b) => a + b, 0);
        return [k.t, (k.envoyWeight[i] as number) / total] as const;
      }),
    });
    util.push({ label: label(i), color, points: r.ticks.map((k) => [k.t, k.util[i] as number] as const) });
  }
  util.push({ label: 'max/avg', color: '#000', dashed: true, width: 1.2, points: r.ticks.map((k) => [k.t, maxOverAvg(k.util)] as const) });
  return renderChart({
    title: `${r.policy}: Envoy weight share and backend utilization`,
    subtitle: [
      `load ${f0(r.targetRps)} rps (${(num('load', args.load) * 100).toFixed(0)}% of ${capacities.reduce((a, b) => a + b, 0)}); ` +
        `steady max/avg ${f3(f.steady.maxAvgMean)}, p99 ${f0(f.latencySteady.p99)} ms`,
      `weighting ${JSON.stringify(f.weighting)}`,
    ],
    xLabel: 'seconds since load start',
    xMin: 0,
    xMax: steadyS + afterS,
    vlines: [{ x: steadyS, label: `b${halve} capacity halved` }],
    panels: [
      { title: 'weight share (Envoy /clusters)', yLabel: 'share of traffic', yMin: 0, series: share, hlines: [{ y: 1 / n, label: 'equal share', color: '#888' }] },
      { title: 'utilization (busy time of the workers in the last 1 s)', yLabel: 'utilization', yMin: 0, yMax: 1.1, series: util, hlines: [{ y: 1.05, label: 'max/avg 1.05', color: '#c00' }] },
    ],
  });
}

function comparisonChart(results: readonly Plotted[]): string {
  const colors: Record<PolicyName, string> = { static: '#888888', pid: '#0072B2', ewma: '#E69F00', blend: '#009E73' };
  return renderChart({
    title: 'max/avg utilization over time, per policy',
    subtitle: ['per tick (0.5 s): the most loaded backend ÷ the mean; 1 = perfectly even'],
    xLabel: 'seconds since load start',
    xMin: 0,
    xMax: steadyS + afterS,
    vlines: [{ x: steadyS, label: `b${halve} capacity halved` }],
    panelHeight: 280,
    panels: [
      {
        title: 'max/avg',
        yMin: 1,
        yMax: 1.6,
        series: results.map((r) => ({ label: r.policy, color: colors[r.policy], points: r.ticks.map((k) => [k.t, maxOverAvg(k.util)] as const) })),
        hlines: [{ y: 1.05, label: 'target 1.05', color: '#c00' }],
      },
    ],
  });
}

async function main(): Promise<void> {
  const outDir = args.out as string;
  await mkdir(outDir, { recursive: true });
  const suffix = args.label ? `-${args.label}` : '';
  log(
    `headline demo: capacities ${capacities.join(',')} rps, load ${args.load} → ${(num('load', args.load) * capacities.reduce((a, b) => a + b, 0)).toFixed(0)} rps, ` +
      `base latency ${args['base-latency']} ms, ${steadyS} s + halve b${halve} + ${afterS} s, tick ${args.tick} ms, LRS ${args.lrs} ms`,
  );
  const results: Plotted[] = [];
  const all: PolicyFigures[] = [];
  const totalCapacity = capacities.reduce((a, b) => a + b, 0);
  for (const policy of policies) {
    if (args.replot) {
      const saved = JSON.parse(await readFile(join(outDir, `${policy}${suffix}.json`), 'utf8')) as { figures: PolicyFigures; ticks: ScenarioResult['ticks'] };
      const r = { policy, ticks: saved.ticks, targetRps: num('load', args.load) * totalCapacity };
      results.push(r);
      all.push(saved.figures);
      await writeFile(join(outDir, `${policy}${suffix}.svg`), chartFor(r, saved.figures));
      continue;
    }
    const started = Date.now();
    log(`▶ ${policy} ${JSON.stringify(WEIGHTING[policy])}${safety && policy !== 'static' ? ` safety ${JSON.stringify(safety)}` : ''}`);
    const useAgent = policy === 'ewma' || policy === 'blend' || (args['agent-always'] === true && policy === 'pid');
    const r = await runScenario({
      policy,
      weighting: WEIGHTING[policy],
      ...(safety && policy !== 'static' ? { safety } : {}),
      capacities,
      baseLatencyMs: num('base-latency', args['base-latency']),
      load: num('load', args.load),
      steadyS,
      afterS,
      halve,
      tickMs: num('tick', args.tick),
      lrsMs: num('lrs', args.lrs),
      sampleMs: num('sample', args.sample),
      agent: useAgent,
      agentCpu: !args['agent-latency-only'],
      log,
    });
    const f = figures(r, WEIGHTING[policy]);
    results.push(r);
    all.push(f);
    log(
      `  done in ${((Date.now() - started) / 1000).toFixed(0)} s: steady max/avg ${f3(f.steady.maxAvgMean)}, p99 ${f0(f.latencySteady.p99)} ms, ` +
        `sent ${f0(r.diagnostics.sentRps)}, completed ${f0(f.latencyAll.achievedRps)} of ${f0(r.targetRps)} rps, errors ${f.latencyAll.errors}, ` +
        `node CPU ${f0(r.diagnostics.nodeCpuPct)}%, Envoy CPU ${f0(r.diagnostics.envoyCpuPct)}%, loop delay p99 ${f0(r.diagnostics.loopDelayP99Ms)} ms` +
        (r.diagnostics.agent ? `, agent ${JSON.stringify(r.diagnostics.agent)}` : ''),
    );
    const svg = chartFor(r, f);
    await writeFile(join(outDir, `${policy}${suffix}.svg`), svg);
    await writeFile(join(outDir, `${policy}${suffix}.json`), JSON.stringify({ figures: f, ticks: r.ticks, trace: r.trace }));
  }
  await writeFile(join(outDir, `max-avg${suffix}.svg`), comparisonChart(results));
  if (args.publish) {
    const resultsDir = fileURLToPath(new URL('./results/', import.meta.url));
    await mkdir(resultsDir, { recursive: true });
    for (const p of policies) await copyFile(join(outDir, `${p}${suffix}.svg`), join(resultsDir, `${p}${suffix}.svg`));
    await copyFile(join(outDir, `max-avg${suffix}.svg`), join(resultsDir, `max-avg${suffix}.svg`));
  }
  process.stdout.write(`\n${table(all)}\n\n`);
  const git = (a: string[]): string => {
    try {
      return execFileSync('git', a, { encoding: 'utf8' }).trim();
    } catch {
      return '?';
    }
  };
  const line = {
    bench: 'headline-demo',
    label: args.label,
    commit: git(['rev-parse', '--short', 'HEAD']),
    srcDirty: git(['status', '--porcelain', 'src']) !== '',
    capacities,
    load: num('load', args.load),
    baseLatencyMs: num('base-latency', args['base-latency']),
    steadyS,
    afterS,
    windowS,
    halve,
    policies: all.map((f) => ({
      policy: f.policy,
      weighting: f.weighting,
      maxAvg: Number(f3(f.steady.maxAvgMean)),
      maxAvgTick: Number(f3(f.steady.maxAvgTick)),
      p95Avg: Number(f3(f.steady.p95AvgMean)),
      p95AvgTick: Number(f3(f.steady.p95AvgTick)),
      p50Ms: Number(f2(f.latencySteady.p50)),
      p99Ms: Number(f2(f.latencySteady.p99)),
      p99AfterMs: Number(f2(f.latencyAfter.p99)),
      p99LateMs: Number(f2(f.latencyLate.p99)),
      maxAvgAfter: Number(f3(f.afterHalving.maxAvgMean)),
      convergeAfterHalvingS: f.policy === 'static' ? null : (f.convergeAfterHalvingS ?? null),
      convergeTo105S: f.policy === 'static' ? null : (f.convergeTo105S ?? null),
      convergeFromStartS: f.policy === 'static' ? null : (f.convergeFromStartS ?? null),
      threshold: Number(f3(f.threshold)),
      envoyWeightVectors: f.envoyWeightVectors,
      achievedRps: Number(f0(f.latencyAll.achievedRps)),
      sentRps: Number(f0(f.diagnostics.sentRps)),
      errors: f.latencyAll.errors,
      meanUtil: Number(f3(mean(f.steady.perBackend))),
      nodeCpuPct: Number(f0(f.diagnostics.nodeCpuPct)),
      envoyCpuPct: Number(f0(f.diagnostics.envoyCpuPct)),
      loopDelayP99Ms: Number(f0(f.diagnostics.loopDelayP99Ms)),
    })),
  };
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

runMain(main);
