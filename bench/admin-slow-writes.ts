/**
 * What the slow admin writes of a traced server waited for (issue 13: endpoint PUT/drain p99).
 * Reads what bench/push-trace.mjs wrote (FULCRUM_PUSH_TRACE=DIR) and, when given, the server's
 * CPU profile (--cpu-prof), and prints for every admin request slower than --slow-ms: its time,
 * the GC pauses and loop stalls inside it, the main thread's CPU and run-queue wait, and the
 * source functions the profile sampled inside it (by stage: the innermost src/ frame).
 *
 *   FULCRUM_PUSH_TRACE=DIR npx tsx bench/admin-100k.ts --node-args=--import=$PWD/bench/push-trace.mjs --cpu-prof DIR
 *   npx tsx bench/admin-slow-writes.ts --dir DIR [--slow-ms 20] [--match /endpoints/] [--stalls-ms 50]
 *
 * With --stalls-ms: also every loop stall at least that long (what every request waited behind),
 * with the GC pauses and the sampled stages inside it.
 *
 * With --bench-out FILE (what bench/admin-100k.ts printed for that run): per big write (its PUTs
 * to /v1/clusters/big…, each with "the write itself" from FILE, plus 500 ms after its answer) the
 * longest loop stall, the most main-thread CPU in one stall (schedstat: without run-queue wait)
 * and how many stalls were over 50 ms; when FILE has the stages' windows (`window START MS LABEL`,
 * bench/admin-100k.ts prints them), the same for every stage, in its window plus 500 ms.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Profile, ProfileNode } from './cpuprofile.js';
import { helpIfAsked } from './help.js';

interface Ev {
  readonly k: string;
  readonly t: number;
  readonly d?: number;
  readonly m?: string;
  readonly u?: string;
  readonly c?: number;
  readonly w?: number;
  readonly hr?: number;
  readonly kind?: number;
}

helpIfAsked(import.meta.url);
const { values } = parseArgs({
  options: {
    dir: { type: 'string' },
    'slow-ms': { type: 'string', default: '20' },
    match: { type: 'string', default: '/endpoints/' },
    'stalls-ms': { type: 'string', default: '0' },
    'bench-out': { type: 'string' },
  },
});
if (values.dir === undefined) throw new Error('--dir DIR (the FULCRUM_PUSH_TRACE directory) is required');
const dir = values.dir;
const slowMs = Number(values['slow-ms']);

const files = readdirSync(dir);
const traceFile = files.find((f) => f.startsWith('trace-') && f.endsWith('.jsonl'));
if (traceFile === undefined) throw new Error(`no trace-*.jsonl in ${dir}`);
const events: Ev[] = readFileSync(join(dir, traceFile), 'utf8')
  .split('\n')
  .filter((l) => l !== '')
  .map((l) => JSON.parse(l) as Ev)
  .sort((a, b) => a.t - b.t);

/** Each sample's wall time (ms since the epoch) and its stack's node ids, leaf first. */
function samplesOf(p: Profile, clock: Ev): { t: number; stack: ProfileNode[] }[] {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, ProfileNode>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n);
  const out: { t: number; stack: ProfileNode[] }[] = [];
  let at = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    at += p.timeDeltas[i] ?? 0;
    const stack: ProfileNode[] = [];
    for (let n = byId.get(p.samples[i] ?? -1); n; n = parent.get(n.id)) stack.push(n);
    out.push({ t: clock.t + (at - (clock.hr ?? 0)) / 1000, stack });
  }
  return out;
}

/** Where a sample was: GC, idle, or its innermost frame in fulcrum's own source (else its leaf). */
function stageOf(stack: readonly ProfileNode[]): string {
  const leaf = stack[0]?.callFrame;
  if (!leaf) return '?';
  if (leaf.functionName === '(garbage collector)' || leaf.functionName === '(idle)' || leaf.functionName === '(program)') return leaf.functionName;
  const own = stack.find((n) => n.callFrame.url.includes('/src/'));
  const f = own?.callFrame ?? leaf;
  return `${f.functionName || '(anon)'} ${f.url.replace(/^.*\/(src|node_modules)\//, '$1/')}:${f.lineNumber + 1}`;
}

const clock = events.find((e) => e.k === 'clock');
// The main thread's profile is the largest (workers write their own).
const profFile = files.filter((f) => f.endsWith('.cpuprofile')).sort((a, b) => statSync(join(dir, b)).size - statSync(join(dir, a)).size)[0];
const samples = profFile && clock ? samplesOf(JSON.parse(readFileSync(join(dir, profFile), 'utf8')) as Profile, clock) : [];

/** Sequential requests only (the write phases): each request's response is the next `res`. */
const rows: string[] = [];
let slow = 0;
let total = 0;
/** Over every matching request: samples per src/ function on the stack (inclusive). */
const inclusive = new Map<string, number>();
let inWrites = 0;
function countInclusive(from: number, to: number): void {
  for (const s of samples) {
    if (s.t < from || s.t >= to) continue;
    inWrites++;
    const seen = new Set<string>();
    for (const n of s.stack) {
      const f = n.callFrame;
      const key = f.url.includes('/src/') || f.functionName.startsWith('(') ? `${f.functionName || '(anon)'} ${f.url.replace(/^.*\/src\//, '')}:${f.lineNumber + 1}` : '';
      if (key === '' || seen.has(key)) continue;
      seen.add(key);
      inclusive.set(key, (inclusive.get(key) ?? 0) + 1);
    }
  }
}
for (let i = 0; i < events.length; i++) {
  const req = events[i];
  if (req?.k !== 'req' || req.u === undefined || !req.u.includes(values.match) || req.m === 'GET') continue;
  const res = events.slice(i + 1).find((e) => e.k === 'res');
  if (!res) continue;
  total++;
  countInclusive(req.t, res.t);
  const ms = res.t - req.t;
  if (ms < slowMs) continue;
  slow++;
  const inside = (e: Ev): boolean => e.t < res.t && e.t + (e.d ?? 0) > req.t;
  const gcs = events.filter((e) => e.k === 'gc' && inside(e));
  const stalls = events.filter((e) => e.k === 'stall' && inside(e));
  const fsyncs = events.filter((e) => e.k === 'fsync' && inside(e));
  const cpu = (res.c ?? 0) - (req.c ?? 0);
  const wait = (res.w ?? 0) - (req.w ?? 0);
  const byStage = new Map<string, number>();
  for (const s of samples) if (s.t >= req.t && s.t < res.t) byStage.set(stageOf(s.stack), (byStage.get(stageOf(s.stack)) ?? 0) + 1);
  const top = [...byStage].sort((a, b) => b[1] - a[1]).slice(0, 6).map(([k, n]) => `${n}× ${k}`).join('; ');
  const gcText = gcs.map((g) => `${(g.d ?? 0).toFixed(1)}${g.kind === 4 ? 'M' : g.kind === 1 ? 'm' : `k${g.kind}`}`).join(' ');
  rows.push(`${req.m} ${req.u} ${ms.toFixed(1)} ms: cpu ${cpu.toFixed(1)} wait ${wait.toFixed(1)}; gc [${gcText}]; stalls [${stalls.map((s) => (s.d ?? 0).toFixed(0)).join(' ')}]; fsync [${fsyncs.map((s) => (s.d ?? 0).toFixed(1)).join(' ')}]\n    ${top}`);
}
process.stdout.write(`${slow} of ${total} matching requests ≥ ${slowMs} ms (samples from ${profFile ?? 'no profile'})\n${rows.join('\n')}\n`);
const syncs = events.filter((e) => e.k === 'fsync').map((e) => e.d ?? 0).sort((a, b) => a - b);
const q = (p: number): string => (syncs[Math.min(syncs.length - 1, Math.floor(p * syncs.length))] ?? Number.NaN).toFixed(1);
process.stdout.write(`fsyncs: ${syncs.length}, p50 ${q(0.5)} p90 ${q(0.9)} p99 ${q(0.99)} max ${q(1)} ms\n`);
if (samples.length > 0) {
  const top = [...inclusive].sort((a, b) => b[1] - a[1]).slice(0, 40);
  process.stdout.write(`samples inside the matching requests: ${inWrites}; by function (inclusive):\n${top.map(([k, n]) => `  ${n} ${k}`).join('\n')}\n`);
}

/** The stages sampled in [from, to), most first. */
function stagesIn(from: number, to: number, top = 6): string {
  const byStage = new Map<string, number>();
  for (const s of samples) if (s.t >= from && s.t < to) byStage.set(stageOf(s.stack), (byStage.get(stageOf(s.stack)) ?? 0) + 1);
  return [...byStage].sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, n]) => `${n}× ${k}`).join('; ');
}

const stallsMs = Number(values['stalls-ms']);
if (stallsMs > 0) {
  const long = events.filter((e) => e.k === 'stall' && (e.d ?? 0) >= stallsMs);
  process.stdout.write(`${long.length} loop stalls ≥ ${stallsMs} ms:\n`);
  for (const st of long) {
    const end = st.t + (st.d ?? 0);
    const gc = events.filter((e) => e.k === 'gc' && e.t >= st.t && e.t < end).reduce((sum, e) => sum + (e.d ?? 0), 0);
    const during = events.filter((e) => e.k === 'req' && e.m !== 'GET' && e.t <= st.t).at(-1);
    const cpu = ((st as Ev & { c2?: number }).c2 ?? 0) - (st.c ?? 0);
    process.stdout.write(`  ${(st.d ?? 0).toFixed(0)} ms (cpu ${cpu.toFixed(0)}, gc ${gc.toFixed(0)}) after ${during ? `${during.m} ${during.u}` : 'start'}: ${stagesIn(st.t, end)}\n`);
  }
}

/** The longest loop stall (wall), the most CPU in one stall and the stalls over 50 ms overlapping [from, to]. */
function stallsIn(from: number, to: number): string {
  // A stall's t is the loop's last turn before it: a request's stall starts just before it arrived.
  const stalls = events.filter((e) => e.k === 'stall' && e.t + (e.d ?? 0) >= from && e.t <= to) as (Ev & { c2?: number })[];
  const wall = Math.max(0, ...stalls.map((e) => e.d ?? 0));
  const cpu = Math.max(0, ...stalls.map((e) => (e.c2 ?? 0) - (e.c ?? 0)));
  return `${wall.toFixed(0)} ms, cpu ${cpu.toFixed(0)} ms, ${stalls.filter((e) => (e.d ?? 0) > 50).length} over 50 ms`;
}

if (values['bench-out'] !== undefined) {
  const out = readFileSync(values['bench-out'], 'utf8');
  // A bench that printed its stages' windows (`window START MS LABEL`): each stage, plus 500 ms after it.
  const windows = [...out.matchAll(/^window (\d+) (\d+) (.*)$/gm)].map((m) => ({ start: Number(m[1]), ms: Number(m[2]), label: m[3] ?? '' }));
  if (windows.length > 0) {
    process.stdout.write('stages: the write (ms), longest stall (wall ms), most CPU in one stall (ms), stalls > 50 ms\n');
    for (const w of windows) process.stdout.write(`  ${w.label}: ${w.ms} ms; ${stallsIn(w.start, w.start + w.ms + 500)}\n`);
  } else {
    const durations = [...out.matchAll(/the write itself \| 1 \| ([0-9.]+)/g)].map((m) => Number(m[1]));
    const writes = events.filter((e) => e.k === 'req' && e.m === 'PUT' && (e.u ?? '').startsWith('/v1/clusters/big'));
    process.stdout.write('big writes: longest stall (wall ms), most CPU in one stall (ms), stalls > 50 ms\n');
    writes.forEach((w, i) => process.stdout.write(`  ${w.u}: ${stallsIn(w.t, w.t + (durations[i] ?? 0) + 500)}\n`));
  }
}
