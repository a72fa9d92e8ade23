/**
 * The scenario suite: each scenario runs once per row (oracle, Envoy's own policies, fulcrum's
 * weighting policies), one row after another, with the same seeded Poisson load, in front of real
 * Envoys and queueing backends. Prints a table per scenario and a markdown version. Figures,
 * not pass/fail.
 */
import { parseArgs } from 'node:util';
import type { RowFigures } from './figures.js';
import { runRow, type RowResult } from './rig.js';
import { ROWS, SCENARIOS, TIMING, type Scenario } from './scenarios.js';
import { fixed, log, markdownTable, out, pickByName, SUITE_OPTIONS, textTable, uptime } from './suite-cli.js';
import { runMain } from '../run-main.js';

/** --short scales every time in a scenario by this. */
const SHORT_SCALE = 0.35;

const HELP = `usage: npx tsx bench/scenarios/run.ts [options]

  --scenario NAME[,NAME]  run only these scenarios (default: all)
  --rows a,b              run only these rows (default: all)
  --short                 rows of ${TIMING.durationS * SHORT_SCALE} s instead of ${TIMING.durationS} s (a smoke run; figures are rough)
  --tick MS               engine tick (default: the shipped default, 1000)
  --lrs MS                Envoy load report interval, fixed (default: fulcrum's cadence, 1000 stretched toward 2000)
  --detail                also print each row's failed requests by outcome and second sent,
                          fulcrum's published weights each second, and around each event the
                          event's backend every 250 ms: its requests in flight, Envoy's view
                          (active, health flags, retry and outlier counters) and fulcrum's
                          (health, weight, error rate and the rules it applied)
  --help                  this text

scenarios:
${SCENARIOS.map((s) => `  ${s.name.padEnd(16)} ${s.title}`).join('\n')}

rows:
${ROWS.map((r) => `  ${r.name.padEnd(16)} ${r.what}`).join('\n')}

Per row: max/avg of the backends' measured utilization over the last ${TIMING.steadyS} s (scaled with --short),
p50/p99 of successful requests and p99 counting failures (at their time to failure) after a
${TIMING.warmS} s warm-up, error rate, convergence (seconds after the scenario's event until the traffic
allocation stays within 10% of the ideal, measured on 3 s windows), overshoot of the event's
backend past its ideal share, changes of fulcrum's published weights per minute, and the p99
event-loop delay of the process running the load, the backends and fulcrum (high: the machine
was starved and the row's figures say more about it than about the policy).
`;

const { values: args } = parseArgs({
  options: {
    ...SUITE_OPTIONS,
    short: { type: 'boolean', default: false },
    tick: { type: 'string' },
    lrs: { type: 'string' },
  },
});

function ms(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 100) throw new Error(`--${name}: expected milliseconds >= 100, got ${v}`);
  return n;
}

const HEAD = ['row', 'max/avg', 'util', 'p50 ms', 'p99 ms', 'p99+fail ms', 'errors', 'conv s', 'overshoot', 'w-chg/min', 'lag p99'];

function cells(r: RowResult): string[] {
  if (!('figures' in r)) return [r.row, `unavailable: ${r.unavailable}`];
  const x: RowFigures = r.figures;
  const conv = x.convergenceS === null ? '—' : x.convergenceS === undefined ? 'never' : fixed(x.convergenceS, 1);
  return [
    r.row,
    fixed(x.maxAvg, 3),
    fixed(x.meanUtil, 2),
    fixed(x.p50, 0),
    fixed(x.p99, 0),
    fixed(x.p99All, 0),
    `${fixed(x.errorRate * 100, 2)}%`,
    conv,
    x.overshoot === null ? '—' : `${fixed(x.overshoot * 100, 0)}%`,
    fixed(x.weightChangesPerMin ?? Number.NaN, 0),
    fixed(x.loopLagP99Ms, 0),
  ];
}

function markdown(s: Scenario, rows: readonly string[][]): string {
  return [`#### ${s.name}: ${s.title}`, '', markdownTable(HEAD, rows)].join('\n');
}

async function main(): Promise<void> {
  if (args.help) return out(HELP);
  const scenarios = pickByName(SCENARIOS, args.scenario, 'scenario');
  const rows = pickByName(ROWS, args.rows, 'rows');
  const tickMs = ms('tick', args.tick);
  const lrsMs = ms('lrs', args.lrs);
  const scale = args.short ? SHORT_SCALE : 1;
  const started = uptime();
  out(`load at start: ${started}`);
  out(`rows of ${(TIMING.durationS * scale).toFixed(0)} s; tick ${tickMs ?? 'default (1000)'} ms, LRS ${lrsMs ?? 'default (1000–2000)'} ms`);
  const markdowns: string[] = [];
  for (const s of scenarios) {
    log(`scenario ${s.name}: ${s.title}`);
    const results: string[][] = [];
    for (const row of rows) {
      log(`  row ${row.name}`);
      const result = await runRow(s, row, { scale, log, detail: args.detail, ...(tickMs !== undefined ? { tickMs } : {}), ...(lrsMs !== undefined ? { lrsMs } : {}) }).catch(
        (err: unknown): RowResult => ({ row: row.name, unavailable: `failed: ${err instanceof Error ? err.message : String(err)}` }),
      );
      results.push(cells(result));
    }
    out(`\n== ${s.name}: ${s.title} (${s.envoys} Envoy${s.envoys > 1 ? 's' : ''}; ${s.events.map((e) => `t=${(e.atS * scale).toFixed(0)} s ${e.what}`).join('; ') || 'no event'})`);
    out(textTable(HEAD, results));
    markdowns.push(markdown(s, results));
  }
  out(`\n${markdowns.join('\n\n')}`);
  out(`\nload at start: ${started}\nload at end:   ${uptime()}`);
}

runMain(main);
