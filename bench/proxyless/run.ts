/**
 * The proxyless benchmark: how fulcrum's adaptive weights balance a fleet of proxyless grpc-go
 * clients against gRPC's own options. Each scenario runs every row `--runs` times (the same seeded
 * arrivals and service times per run index, a different seed per run) and prints one table per
 * scenario of the medians, with the load average. Figures, not pass/fail.
 */
import { parseArgs } from 'node:util';
import { buildGo } from '../gcp-fanout-servers.js';
import { quantile } from '../scenarios/figures.js';
import { fixed, log, markdownTable, out, pickByName, SUITE_OPTIONS, textTable, uptime } from '../scenarios/suite-cli.js';
import { runRow, type ProxylessFigures, type ProxylessResult } from './rig.js';
import { ROWS, SCENARIOS, TIMING } from './scenarios.js';
import { runMain } from '../run-main.js';

const HELP = `usage: npx tsx bench/proxyless/run.ts [options]

  --scenario NAME[,NAME]  run only these scenarios (default: hetero,fast-fail)
  --rows a,b              run only these rows (default: all)
  --runs N                runs of every row (default 3); the tables show medians
  --detail                every second of an adaptive row: fulcrum's inputs (cpu, latency, calls
                          a second, calls in flight, error rate), their freshness, the published
                          weight and the rules that applied, per endpoint; per row, the failed
                          calls by the second they were sent in
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
    ...SUITE_OPTIONS,
    scenario: { type: 'string', default: 'hetero,fast-fail' },
    runs: { type: 'string', default: '3' },
  },
});

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
    fixed(m('maxAvg'), 3),
    fixed(m('meanUtil'), 2),
    fixed(m('p50'), 0),
    fixed(m('p99'), 0),
    fixed(m('p99All'), 0),
    `${fixed(m('errorRate') * 100, 2)}%`,
    `${fixed(m('targetShare') * 100, 1)}%`,
    figs[figs.length - 1]?.weights || '—',
    `${figs.length}${failed.length > 0 ? ` (${failed.length} failed)` : ''}`,
  ];
}

async function main(): Promise<void> {
  if (args.help) return out(HELP);
  const scenarios = pickByName(SCENARIOS, args.scenario, 'scenario');
  const rows = pickByName(ROWS, args.rows, 'rows');
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
    out(textTable(HEAD, table_));
    out(`\n${markdownTable(HEAD, table_)}`);
  }
  out(`\nload at start: ${started}\nload at end:   ${uptime()}`);
}

runMain(main);
