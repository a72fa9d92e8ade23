/**
 * bench/sotw-rounds.ts's arithmetic: each round's stages from the client's times (trigger, receive)
 * and the server's trace (bench/push-trace.mjs), what overlapped the slow ones, and the report.
 */

export interface TraceEvent {
  readonly k: 'req' | 'res' | 'h2w' | 'gc' | 'stall';
  /** ms since the epoch (the server's wall clock; the client's is the same machine's). */
  readonly t: number;
  readonly d?: number;
  readonly m?: string;
  readonly n?: number;
  readonly kind?: number;
  /** The server's main thread: cumulative CPU and run-queue wait (ms) at t; a stall's at its end in c2/w2. */
  readonly c?: number;
  readonly w?: number;
  readonly c2?: number;
  readonly w2?: number;
}

export interface RoundTiming {
  readonly server: string;
  readonly protocol: string;
  /** The client fired the PATCH (ms since the epoch). */
  readonly t0: number;
  /** Until the stream had the new weight. */
  readonly ms: number;
  readonly apiMs: number;
  /** The load client's threads' run-queue wait during the round (ms, summed over threads). */
  readonly clientWaitMs?: number;
}

const STAGES = ['toServer', 'server', 'wire', 'api'] as const;
type Stage = (typeof STAGES)[number];
const STAGE_TEXT: Record<Stage, string> = {
  toServer: 'PATCH sent → request seen by the server',
  server: 'request seen → xDS response written (body, validation, commit, publish, encode)',
  wire: 'response written → client has it',
  api: 'request seen → API response finished',
};

interface Staged extends RoundTiming {
  readonly stages: Partial<Record<Stage, number>>;
  readonly gcMs: number;
  readonly gcKinds: string;
  readonly stallMs: number;
  /** Of the server stage and of the longest overlapping stall: main-thread CPU and run-queue wait (ms). */
  readonly serverCpu?: number;
  readonly serverWait?: number;
  readonly stallCpu?: number;
  readonly stallWait?: number;
}

const diff = (a: number | undefined, b: number | undefined): number | undefined => (a !== undefined && b !== undefined ? b - a : undefined);

/** The first event of kind `k` at or after `from` (events sorted by t), and before `until`. */
function firstAfter(events: readonly TraceEvent[], k: TraceEvent['k'], from: number, until: number): TraceEvent | undefined {
  let lo = 0;
  let hi = events.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((events[mid]?.t ?? 0) < from) lo = mid + 1;
    else hi = mid;
  }
  for (let i = lo; i < events.length; i++) {
    const e = events[i];
    if (!e || e.t > until) return undefined;
    if (e.k === k) return e;
  }
  return undefined;
}

const GC_KIND: Record<number, string> = { 1: 'minor', 2: 'major', 4: 'major', 8: 'incremental', 16: 'weak' };

function overlapping(events: readonly TraceEvent[], k: 'gc' | 'stall', from: number, to: number): TraceEvent[] {
  return events.filter((e) => e.k === k && e.t < to && e.t + (e.d ?? 0) > from);
}

function stage(r: RoundTiming, events: readonly TraceEvent[]): Staged {
  const recv = r.t0 + r.ms;
  const until = recv + r.apiMs + 1000;
  // The clocks are one machine's; 1 ms of slack for the client's and the server's readings.
  const req = firstAfter(events, 'req', r.t0 - 1, until);
  const stages: Partial<Record<Stage, number>> = {};
  const split: { serverCpu?: number; serverWait?: number } = {};
  if (req) {
    stages.toServer = req.t - r.t0;
    const write = firstAfter(events, 'h2w', req.t, until);
    if (write) {
      stages.server = write.t - req.t;
      stages.wire = recv - write.t;
      split.serverCpu = diff(req.c, write.c);
      split.serverWait = diff(req.w, write.w);
    }
    const res = firstAfter(events, 'res', req.t, until);
    if (res) stages.api = res.t - req.t;
  }
  const gcs = overlapping(events, 'gc', r.t0, recv);
  const stalls = overlapping(events, 'stall', r.t0, recv);
  const longest = stalls.reduce<TraceEvent | undefined>((a, e) => ((e.d ?? 0) > (a?.d ?? 0) ? e : a), undefined);
  return {
    ...r,
    stages,
    ...split,
    stallCpu: diff(longest?.c, longest?.c2),
    stallWait: diff(longest?.w, longest?.w2),
    gcMs: gcs.reduce((a, e) => a + (e.d ?? 0), 0),
    gcKinds: [...new Set(gcs.map((e) => GC_KIND[e.kind ?? 0] ?? String(e.kind)))].join('+'),
    stallMs: stalls.reduce((a, e) => Math.max(a, e.d ?? 0), 0),
  };
}

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.max(0, Math.min(sorted.length - 1, Math.ceil(sorted.length * q) - 1))] ?? NaN;
}

const sortedOf = (xs: Iterable<number | undefined>): number[] => [...xs].filter((x): x is number => x !== undefined).sort((a, b) => a - b);
const f = (x: number): string => (Number.isNaN(x) ? '–' : x.toFixed(x < 10 ? 2 : 1));
const q4 = (xs: readonly number[]): string => `${f(quantile(xs, 0.5))} / ${f(quantile(xs, 0.9))} / ${f(quantile(xs, 0.99))} / ${f(quantile(xs, 1))}`;

export interface Analysis {
  readonly groups: ReadonlyMap<string, readonly Staged[]>;
  readonly slowMs: number;
}

export function analyse(rounds: ReadonlyMap<string, readonly RoundTiming[]>, traces: ReadonlyMap<string, readonly TraceEvent[]>, slowMs: number): Analysis {
  const groups = new Map<string, Staged[]>();
  for (const [key, rs] of rounds) groups.set(key, rs.map((r) => stage(r, traces.get(r.server) ?? [])));
  return { groups, slowMs };
}

/** The stage that took longest in a round (what a slow round is attributed to). */
function dominant(s: Staged): Stage | 'unmatched' {
  let best: Stage | 'unmatched' = 'unmatched';
  let most = -Infinity;
  for (const k of ['toServer', 'server', 'wire'] as const) {
    const v = s.stages[k];
    if (v !== undefined && v > most) [best, most] = [k, v];
  }
  return best;
}

/**
 * What a slow round's excess over the median goes to, by the evidence that covers at least half
 * of it: the server's main thread neither running nor runnable during its longest stall (a
 * syscall such as an fsync, or waiting for GC helper threads), waiting for a core, the load
 * client waiting for a core, a GC pause; else the server's own CPU or unexplained.
 */
export function cause(r: Staged, median: number): string {
  const half = (r.ms - median) / 2;
  const stallCpu = r.stallCpu ?? 0;
  const stallWait = r.stallWait ?? 0;
  if (r.stallMs - stallCpu - stallWait > half) return 'server blocked';
  if (stallWait > half) return 'server waited for a core';
  if ((r.clientWaitMs ?? 0) > half) return 'client waited for a core';
  if (r.gcMs > half) return 'GC pause';
  if (stallCpu > half || (r.serverCpu ?? 0) > half) return 'server CPU';
  return 'unexplained';
}

function groupReport(key: string, rs: readonly Staged[], slowMs: number): string[] {
  const lat = sortedOf(rs.map((r) => r.ms));
  const slow = rs.filter((r) => r.ms > slowMs);
  const lines = [`### ${key}: ${rs.length} rounds`, '', `latency p50 / p90 / p99 / max ms: ${q4(lat)}; over ${slowMs} ms: ${slow.length}`, ''];
  lines.push('| stage | p50 / p90 / p99 / max ms |', '|---|---|');
  for (const k of STAGES) lines.push(`| ${STAGE_TEXT[k]} | ${q4(sortedOf(rs.map((r) => r.stages[k])))} |`);
  const by = new Map<string, number>();
  for (const r of slow) by.set(dominant(r), (by.get(dominant(r)) ?? 0) + 1);
  lines.push('', `slow rounds by longest stage: ${[...by].map(([k, n]) => `${k} ${n}`).join(', ') || 'none'}; with a GC pause inside: ${slow.filter((r) => r.gcMs > 0).length}; with a loop stall > 6 ms: ${slow.filter((r) => r.stallMs > 0).length}`);
  const median = quantile(lat, 0.5);
  const causes = new Map<string, number>();
  for (const r of slow) causes.set(cause(r, median), (causes.get(cause(r, median)) ?? 0) + 1);
  lines.push(`slow rounds by cause (evidence for half the excess over the median): ${[...causes].map(([k, n]) => `${k} ${n}`).join(', ') || 'none'}`);
  lines.push(`slow rounds where the load client waited > 5 ms for a core: ${slow.filter((r) => (r.clientWaitMs ?? 0) > 5).length}`);
  lines.push(`all rounds with a GC pause inside: ${rs.filter((r) => r.gcMs > 0).length}, their latency p50 ${f(quantile(sortedOf(rs.filter((r) => r.gcMs > 0).map((r) => r.ms)), 0.5))} ms`);
  lines.push('', '| # | ms | toServer | server (cpu / run-queue) | wire | api | GC ms (kind) | stall ms (cpu / run-queue) | client run-queue ms |', '|---|---|---|---|---|---|---|---|---|');
  for (const r of [...slow].sort((a, b) => b.ms - a.ms).slice(0, 25)) {
    const st = (k: Stage): string => f(r.stages[k] ?? NaN);
    const server = `${st('server')} (${f(r.serverCpu ?? NaN)} / ${f(r.serverWait ?? NaN)})`;
    const stall = r.stallMs > 0 ? `${f(r.stallMs)} (${f(r.stallCpu ?? NaN)} / ${f(r.stallWait ?? NaN)})` : '';
    lines.push(`| ${rs.indexOf(r) + 1} | ${f(r.ms)} | ${st('toServer')} | ${server} | ${st('wire')} | ${st('api')} | ${r.gcMs > 0 ? `${f(r.gcMs)} (${r.gcKinds})` : ''} | ${stall} | ${f(r.clientWaitMs ?? NaN)} |`);
  }
  return lines;
}

export function formatReport(a: Analysis): string {
  return [...a.groups].flatMap(([key, rs]) => [...groupReport(key, rs, a.slowMs), '']).join('\n');
}
