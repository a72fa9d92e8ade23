/**
 * The command-line parts the two scenario suites share (bench/scenarios/run.ts and
 * bench/proxyless/run.ts): their common options, picking scenarios and rows by name, output, and the
 * result tables (a row of two cells is a row that has no figures: its name and why).
 */
import { execFileSync } from 'node:child_process';

/** parseArgs options both suites take; each adds its own (and may give --scenario a default). */
export const SUITE_OPTIONS = {
  scenario: { type: 'string' },
  rows: { type: 'string' },
  detail: { type: 'boolean', default: false },
  help: { type: 'boolean', default: false },
} as const;

/** Progress, on stderr. */
export const log = (s: string): void => void process.stderr.write(`${s}\n`);
/** Results, on stdout. */
export const out = (s: string): void => void process.stdout.write(`${s}\n`);
/** The machine's load, printed with the figures: a loaded machine skews them. */
export const uptime = (): string => execFileSync('uptime', { encoding: 'utf8' }).trim();
/** A figure with `d` decimals, or a dash when there is none. */
export const fixed = (v: number, d: number): string => (Number.isFinite(v) ? v.toFixed(d) : '—');

/** The entries `list` names (comma-separated), in `all`'s order; all of them when no list is given. */
export function pickByName<T extends { name: string }>(all: readonly T[], list: string | undefined, flag: string): T[] {
  if (list === undefined) return [...all];
  const names = list.split(',').map((n) => n.trim()).filter((n) => n !== '');
  for (const n of names) if (!all.some((x) => x.name === n)) throw new Error(`--${flag}: unknown ${n} (${all.map((x) => x.name).join(', ')})`);
  return all.filter((x) => names.includes(x.name));
}

/** The rows as a plain-text table under `head`, figures right-aligned. */
export function textTable(head: readonly string[], rows: readonly string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.filter((r) => r.length > 2).map((r) => (r[i] ?? '').length)));
  const line = (r: readonly string[]): string => (r.length === 2 ? `${(r[0] ?? '').padEnd(widths[0] ?? 0)}  ${r[1]}` : r.map((c, i) => c.padStart(widths[i] ?? 0)).join('  '));
  return [line(head), ...rows.map(line)].join('\n');
}

/** The rows as a markdown table under `head` (for bench/RESULTS.md). */
export function markdownTable(head: readonly string[], rows: readonly string[][]): string {
  const md = (r: readonly string[]): string => `| ${(r.length === 2 ? [r[0] ?? '', r[1] ?? '', ...head.slice(2).map(() => '')] : r).join(' | ')} |`;
  return [md(head), `|${head.map(() => '---').join('|')}|`, ...rows.map(md)].join('\n');
}
