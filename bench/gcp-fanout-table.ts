/** Statistics and the one table of bench/gcp-fanout.ts. */
import type { Server } from './gcp-fanout-servers.js';

/** What one round measures, and a row's medians of it (ms). */
interface Measured {
  p50: number;
  p99: number;
  max: number;
  apiMs: number;
  clientCpuMs: number;
  serverCpuMs: number;
}

/** One JSON line of the Go load client (bench/go/loadclient). */
export interface RoundLine extends Measured {
  type: 'synced' | 'round';
  ms?: number;
  /** A round's trigger time, ms since the epoch. */
  t0?: number;
  streams: number;
  received: number;
  /** Streams whose subscription holds the watched cluster (all of them unless a subset was asked). */
  expected?: number;
  /** Streams the server ended and the client opened again, since the client started. */
  reconnects: number;
  bytesPerStream: number;
  error?: string;
}

export interface Row extends Measured {
  server: string;
  cache: string;
  protocol: string;
  streams: number;
  rounds: number;
  /** Fewest streams that received a round's change. */
  minReceived: number;
  /** Streams the change had to reach (fewest over the rounds). */
  expected: number;
  reconnects: number;
  kibPerStream: number;
  errors: string[];
}

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
};

/** Nearest-rank quantile, as the load client computes its own. */
export function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : (s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] as number);
}

/**
 * Medians over the rounds (a fan-out row's p99 is the median of its rounds' p99s). A single-proxy
 * row has one latency per round, so its p50 / p99 / max are taken across the rounds.
 */
export function summarize(server: Server, protocol: string, streams: number, run: { rounds: RoundLine[]; failure: string | undefined }): Row {
  const { rounds } = run;
  const pick = (f: (r: RoundLine) => number): number => median(rounds.map(f));
  const single = streams === 1 ? rounds.map((r) => r.p50) : undefined;
  return {
    server: server.label,
    cache: server.cache,
    protocol,
    streams,
    rounds: rounds.length,
    minReceived: rounds.length > 0 ? Math.min(...rounds.map((r) => r.received)) : 0,
    expected: rounds.length > 0 ? Math.min(...rounds.map((r) => r.expected ?? r.streams)) : streams,
    reconnects: rounds.at(-1)?.reconnects ?? NaN,
    p50: single ? quantile(single, 0.5) : pick((r) => r.p50),
    p99: single ? quantile(single, 0.99) : pick((r) => r.p99),
    max: single ? quantile(single, 1) : pick((r) => r.max),
    apiMs: pick((r) => r.apiMs),
    clientCpuMs: pick((r) => r.clientCpuMs),
    serverCpuMs: pick((r) => r.serverCpuMs),
    kibPerStream: pick((r) => r.bytesPerStream) / 1024,
    errors: [...(run.failure ? [run.failure] : []), ...rounds.flatMap((r) => (r.error ? [r.error] : []))],
  };
}

const f = (x: number, digits = 0): string =>
  Number.isFinite(x) ? x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }) : '–';
const ms = (x: number): string => (x < 10 ? f(x, 1) : f(x));

function ratio(rows: Row[], row: Row, cache: string): string {
  if (!row.server.startsWith('fulcrum')) return '';
  const other = rows.find((r) => r.cache === cache && r.protocol === row.protocol && r.streams === row.streams);
  return other && other.p99 > 0 ? f(row.p99 / other.p99, 2) : '–';
}

/** Markdown table: one row per server × cache × protocol × streams; ratios of p99 on fulcrum rows. */
export function formatTable(rows: Row[]): string {
  const head = [
    'server', 'cache', 'protocol', 'streams', 'received (fewest)', 'reconnects', 'p50 / p99 / max ms', 'API call ms',
    'client CPU ms', 'server CPU ms', 'KiB per stream', 'p99 ÷ LinearCache', 'p99 ÷ SnapshotCache',
  ];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`];
  for (const r of rows) {
    lines.push(`| ${[
      r.server, r.cache, r.protocol, f(r.streams), `${f(r.minReceived)} of ${f(r.expected)}`, f(r.reconnects),
      `${ms(r.p50)} / ${ms(r.p99)} / ${ms(r.max)}`, ms(r.apiMs), ms(r.clientCpuMs), ms(r.serverCpuMs),
      f(r.kibPerStream, 1), ratio(rows, r, 'LinearCache'), ratio(rows, r, 'SnapshotCache'),
    ].join(' | ')} |`);
    for (const e of r.errors) lines.push(`|  ${r.server} ${r.protocol} ${r.streams}: ${e} |`);
  }
  return lines.join('\n');
}
