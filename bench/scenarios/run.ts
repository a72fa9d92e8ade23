/**
 * The scenario suite: each scenario runs once per row (oracle, Envoy's own policies, fulcrum's
 * weighting policies), one row after another, with the same seeded Poisson load, in front of real
 * Envoys and queueing backends. Prints a table per scenario and a markdown version. Figures,
 * not pass/fail.
 */
import { execFileSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import type { RowFigures } from './figures.js';
import { runRow, type RowResult } from './rig.js';
import { ROWS, SCENARIOS, TIMING, type Scenario } from './scenarios.js';

/** --short scales every time in a scenario by this. */
const SHORT_SCALE = 0.35;

const HELP = `usage: npx tsx bench/scenarios/run.ts [options]

  --scenario NAME[,NAME]  run only these scenarios (default: all)
  --rows a,b              run only these rows (default: all)
  --short                 rows of ${TIMING.durationS * SHORT_SCALE} s instead of ${TIMING.durationS} s (a smoke run; figures are rough)
  --tick MS               engine tick (default: the shipped default, 1000)
  --lrs MS                Envoy load report interval (default: the shipped default, 2000)
  --detail                also print each row's failed requests by outcome and second sent,
                          fulcrum's published weights each second, and around each event the
                          event's backend every 250 ms: its requests in flight, Envoy's view
                          (active, health flags, retry and outlier counters) and fulcrum's
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
    scenario: { type: 'string' },
    rows: { type: 'string' },
    short: { type: 'boolean', default: false },
    tick: { type: 'string' },
    lrs: { type: 'string' },
    detail: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});

const log = (s: string): void => void process.stderr.write(`${s}\n`);
const out = (s: string): void => void process.stdout.write(`${s}\n`);

function pick<T extends { name: string }>(all: readonly T[], list: string | undefined, flag: string): T[] {
  if (list === undefined) return [...all];
  const names = list.split(',').map((n) => n.trim()).filter((n) => n !== '');
  for (const n of names) if (!all.some((x) => x.name === n)) throw new Error(`--${flag}: unknown ${n} (${all.map((x) => x.name).join(', ')})`);
  return all.filter((x) => names.includes(x.name));
}

function ms(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 100) throw new Error(`--${name}: expected milliseconds >= 100, got ${v}`);
  return n;
}

const uptime = (): string => execFileSync('uptime', { encoding: 'utf8' }).trim();
const f = (v: number, d = 2): string => (Number.isFinite(v) ? v.toFixed(d) : '—');

const HEAD = ['row', 'max/avg', 'util', 'p50 ms', 'p99 ms', 'p99+fail ms', 'errors', 'conv s', 'overshoot', 'w-chg/min', 'lag p99'];

function cells(r: RowResult): string[] {
  if (!('figures' in r)) return [r.row, `unavailable: ${r.unavailable}`];
  const x: RowFigures = r.figures;
  const conv = x.convergenceS === null ? '—' : x.convergenceS === undefined ? 'never' : f(x.convergenceS, 1);
  return [
    r.row,
    f(x.maxAvg, 3),
    f(x.meanUtil, 2),
    f(x.p50, 0),
    f(x.p99, 0),
    f(x.p99All, 0),
    `${f(x.errorRate * 100, 2)}%`,
    conv,
    x.overshoot === null ? '—' : `${f(x.overshoot * 100, 0)}%`,
    f(x.weightChangesPerMin ?? Number.NaN, 0),
    f(x.loopLagP99Ms, 0),
  ];
}

function table(rows: readonly string[][]): string {
  const widths = HEAD.map((h, i) => Math.max(h.length, ...rows.filter((r) => r.length > 2).map((r) => (r[i] ?? '').length)));
  const line = (r: readonly string[]): string => (r.length === 2 ? `${(r[0] ?? '').padEnd(widths[0] ?? 0)}  ${r[1]}` : r.map((c, i) => c.padStart(widths[i] ?? 0)).join('  '));
  return [line(HEAD), ...rows.map(line)].join('\n');
}

function markdown(s: Scenario, rows: readonly string[][]): string {
  const md = (r: readonly string[]): string => `| ${(r.length === 2 ? [r[0] ?? '', r[1] ?? '', ...HEAD.slice(2).map(() => '')] : r).join(' | ')} |`;
  return [`#### ${s.name}: ${s.title}`, '', md(HEAD), `|${HEAD.map(() => '---').join('|')}|`, ...rows.map(md)].join('\n');
}

async function main(): Promise<void> {
  if (args.help) return out(HELP);
  const scenarios = pick(SCENARIOS, args.scenario, 'scenario');
  const rows = pick(ROWS, args.rows, 'rows');
  const tickMs = ms('tick', args.tick);
  const lrsMs = ms('lrs', args.lrs);
  const scale = args.short ? SHORT_SCALE : 1;
  const started = uptime();
  out(`load at start: ${started}`);
  out(`rows of ${(TIMING.durationS * scale).toFixed(0)} s; tick ${tickMs ?? 'default (1000)'} ms, LRS ${lrsMs ?? 'default (2000)'} ms`);
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
    out(table(results));
    markdowns.push(markdown(s, results));
  }
  out(`\n${markdowns.join('\n\n')}`);
  out(`\nload at start: ${started}\nload at end:   ${uptime()}`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    log(err instanceof Error ? (err.stack ?? err.message) : String(err));
    process.exit(1);
  },
);
