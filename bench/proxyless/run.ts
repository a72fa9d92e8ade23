/**
 * The proxyless benchmark: how fulcrum's adaptive weights balance a fleet of proxyless grpc-go
 * clients against gRPC's own options. Each scenario runs every row `--runs` times (the same seeded
 * arrivals and service times per run index, a different seed per run) and prints one table per
 * scenario of the medians, with the load average. Figures, not pass/fail.
 */
import { execFileSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { buildGo } from '../gcp-fanout-servers.js';
import { quantile } from '../scenarios/figures.js';
import { runRow, type ProxylessFigures, type ProxylessResult } from './rig.js';
import { ROWS, SCENARIOS, TIMING } from './scenarios.js';

const HELP = `usage: npx tsx bench/proxyless/run.ts [options]

  --scenario NAME[,NAME]  run only these scenarios (default: hetero,fast-fail)
  --rows a,b              run only these rows (default: all)
  --runs N                runs of every row (default 3); the tables show medians
  --detail                every 2 s of an adaptive row: fulcrum's inputs (cpu, latency, error
                          rate) and published weight per endpoint
  --help                  this text

scenarios:
${SCENARIOS.map((s) => `  ${s.name.padEnd(14)} ${s.title}`).join('\n')}

rows:
${ROWS.map((r) => `  ${r.name.padEnd(14)} ${r.what}`).join('\n')}

Per row (rows of ${TIMING.durationS} s; needs Go: bench/go is built once): max/avg of the backends'
measured utilization over the last ${TIMING.steadyS} s, their mean utilization, p50/p99 of successful
calls and p99 counting failures after a ${TIMING.warmS} s warm-up, error rate, the share of calls the
event's backend (else the biggest) took after the event (failures counted as its), and fulcrum's
weights at the end of the last run (adaptive rows).
`;

const { values: args } = parseArgs({
  options: {
    scenario: { type: 'string', default: 'hetero,fast-fail' },
    rows: { type: 'string' },
    runs: { type: 'string', default: '3' },
    detail: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});

const log = (s: string): void => void process.stderr.write(`${s}\n`);
const out = (s: string): void => void process.stdout.write(`${s}\n`);
const uptime = (): string => execFileSync('uptime', { encoding: 'utf8' }).trim();
const f = (v: number, d: number): string => (Number.isFinite(v) ? v.toFixed(d) : '—');

function pick<T extends { name: string }>(all: readonly T[], list: string | undefined, flag: string): T[] {
  if (list === undefined) return [...all];
  const names = list.split(',').map((n) => n.trim()).filter((n) => n !== '');
  for (const n of names) if (!all.some((x) => x.name === n)) throw new Error(`--${flag}: unknown ${n} (${all.map((x) => x.name).join(', ')})`);
  return all.filter((x) => names.includes(x.name));
}

const HEAD = ['row', 'max/avg', 'util', 'p50 ms', 'p99 ms', 'p99+fail ms', 'errors', 'target share', 'fulcrum weights', 'runs'];

const median = (xs: readonly number[]): number => quantile(xs, 0.5);

/** The medians of a row's runs, as table cells. */
function cells(row: string, results: readonly ProxylessResult[]): string[] {
  const figs = results.flatMap((r) => ('figures' in r ? [r.figures] : []));
  const failed = results.flatMap((r) => ('unavailable' in r ? [r.unavailable] : []));
  if (figs.length === 0) return [row, `unavailable: ${failed[0] ?? 'no run'}`];
  const m = (k: keyof Omit<ProxylessFigures, 'weights'>): number => median(figs.map((x) => x[k]));
  return [
    row,
    f(m('maxAvg'), 3),
    f(m('meanUtil'), 2),
    f(m('p50'), 0),
    f(m('p99'), 0),
    f(m('p99All'), 0),
    `${f(m('errorRate') * 100, 2)}%`,
    `${f(m('targetShare') * 100, 1)}%`,
    figs[figs.length - 1]?.weights || '—',
    `${figs.length}${failed.length > 0 ? ` (${failed.length} failed)` : ''}`,
  ];
}

function table(rows: readonly string[][]): string {
  const widths = HEAD.map((h, i) => Math.max(h.length, ...rows.filter((r) => r.length > 2).map((r) => (r[i] ?? '').length)));
  const line = (r: readonly string[]): string => (r.length === 2 ? `${(r[0] ?? '').padEnd(widths[0] ?? 0)}  ${r[1]}` : r.map((c, i) => c.padStart(widths[i] ?? 0)).join('  '));
  return [line(HEAD), ...rows.map(line)].join('\n');
}

function markdown(rows: readonly string[][]): string {
  const md = (r: readonly string[]): string => `| ${(r.length === 2 ? [r[0] ?? '', r[1] ?? '', ...HEAD.slice(2).map(() => '')] : r).join(' | ')} |`;
  return [md(HEAD), `|${HEAD.map(() => '---').join('|')}|`, ...rows.map(md)].join('\n');
}

async function main(): Promise<void> {
  if (args.help) return out(HELP);
  const scenarios = pick(SCENARIOS, args.scenario, 'scenario');
  const rows = pick(ROWS, args.rows, 'rows');
  const runs = Number(args.runs);
  if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs: expected a positive integer, got ${args.runs}`);
  const bins = buildGo(log);
  const started = uptime();
  out(`load at start: ${started}`);
  for (const s of scenarios) {
    const byRow = new Map<string, ProxylessResult[]>(rows.map((r) => [r.name, []]));
    // Rows interleaved within a run, so the machine's load drifts over all of them alike.
    for (let run = 0; run < runs; run++) {
      for (const row of rows) {
        log(`${s.name} run ${run + 1}/${runs}: ${row.name} (${uptime().replace(/.*load/, 'load')})`);
        const result = await runRow(s, row, bins, 1 + run, log, args.detail).catch((err: unknown): ProxylessResult => ({ row: row.name, unavailable: `failed: ${err instanceof Error ? err.message : String(err)}` }));
        if ('figures' in result) log(`    ${cells(row.name, [result]).slice(1, 9).join('  ')}`);
        byRow.get(row.name)?.push(result);
      }
    }
    const table_ = rows.map((r) => cells(r.name, byRow.get(r.name) ?? []));
    out(`\n== ${s.name}: ${s.title} (medians of ${runs} runs of ${TIMING.durationS} s; ${uptime().replace(/.*load/, 'load')})`);
    out(table(table_));
    out(`\n${markdown(table_)}`);
  }
  out(`\nload at start: ${started}\nload at end:   ${uptime()}`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    log(err instanceof Error ? (err.stack ?? err.message) : String(err));
    process.exit(1);
  },
);
