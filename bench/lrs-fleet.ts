/**
 * A fleet's load reports (LRS): how much of fulcrum's CPU they take, this checkout against another
 * (e.g. a worktree of main, built), side by side in one run.
 *
 * For each fleet size, each checkout's fulcrum (compiled dist/, its own process) serves LRS with
 * `--clusters` PID-weighted clusters of `--endpoints` endpoints, and bench/go/lrsclient opens
 * one connection and LRS stream per proxy: Envoy's first request, then a report every interval
 * fulcrum asks for (`--interval-ms`; `default`: fulcrum's own cadence, whose later answers the
 * client follows as Envoy does), each proxy at its own phase of it, naming every endpoint
 * of every cluster with traffic and ORCA cpu (as an Envoy that calls them all sends), and its
 * whole Node (`--extensions`: Envoy 1.40 lists 516 compiled-in extensions, ~61 KB). After a
 * warm-up it reads the server's CPU time over `--seconds` from /proc. The two checkouts run one
 * after the other per row, in alternating order per repeat. A server that cannot keep up reads
 * fewer reports than the fleet sends (gRPC's flow control holds the senders back), so each row
 * gives every checkout's entries read per second, its CPU per second and its CPU per entry; the
 * ratio is this ÷ other of the CPU per entry. Not a test.
 *
 *   npx tsx bench/lrs-fleet.ts [--other /path/to/checkout] [--proxies 50,200,400] [--clusters 5]
 *     [--endpoints 20] [--interval-ms 2000|default] [--seconds 10] [--repeat 1] [--extensions 516] [--cpu-prof DIR]
 *     [--fulcrum-node-args="--max-semi-space-size=4 --v8-pool-size=1"]
 *
 * `--fulcrum-node-args`: node options for every fulcrum, space-separated; by default the ones npm
 * start, the Dockerfile and the Kubernetes manifests run it with (V8's young generation and GC
 * helpers bounded), so the figures are those of a deployed fulcrum. Before lrs35 it ran with none.
 * `--cpu-prof DIR`: each checkout's fulcrum writes a CPU profile per run into DIR/this or DIR/other.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { buildGo, clusterName, integer, list, repoRoot, startFulcrum } from './gcp-fanout-servers.js';
import { helpIfAsked } from './help.js';

helpIfAsked(import.meta.url);
const { values: args } = parseArgs({
  options: {
    other: { type: 'string' },
    proxies: { type: 'string', default: '50,200,400' },
    clusters: { type: 'string', default: '5' },
    endpoints: { type: 'string', default: '20' },
    'interval-ms': { type: 'string', default: '2000' },
    seconds: { type: 'string', default: '10' },
    repeat: { type: 'string', default: '1' },
    extensions: { type: 'string', default: '516' },
    /** Write each checkout's fulcrum CPU profiles (node --cpu-prof) into this folder. */
    'cpu-prof': { type: 'string' },
    /** node options for every fulcrum, space-separated: by default what npm start, the Dockerfile and the manifests run. */
    'fulcrum-node-args': { type: 'string', default: '--max-semi-space-size=4 --v8-pool-size=1' },
  },
});
const fleets = list(args.proxies).map((p) => integer('proxies', p));
const clusters = integer('clusters', args.clusters);
const endpoints = integer('endpoints', args.endpoints);
/** 'default': fulcrum's own cadence (1 s, stretched toward 2 s as the fleet's reports grow); a number: that fixed interval. */
const intervalMs = args['interval-ms'] === 'default' ? undefined : integer('interval-ms', args['interval-ms'], 100);
const seconds = integer('seconds', args.seconds);
const repeat = integer('repeat', args.repeat);
const extensions = integer('extensions', args.extensions, 0);
const NODE_ARGS = list(args['fulcrum-node-args'].replaceAll(' ', ','));

interface Line {
  readonly streams: number;
  readonly reports: number;
  readonly entriesPerSec: number;
  readonly serverCpuPerSec: number;
  readonly streamFailures: number;
  /** The interval the proxies were last asked (ms). */
  readonly intervalMs: number;
}

const log = (s: string): void => void process.stderr.write(`${s}\n`);
const bins = buildGo(log);
const checkouts = [{ label: 'this', root: repoRoot }, ...(args.other ? [{ label: 'other', root: args.other }] : [])];
const commit = (root: string): string => execFileSync('git', ['-C', root, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();

async function runOne(dir: string, checkout: (typeof checkouts)[number], proxies: number): Promise<Line> {
  const server = await startFulcrum(dir, {
    debounce: 'default',
    catalog: { clusters, endpoints, weighting: { policy: 'pid', setpoint: 'mean', metric: 'cpu' } },
    root: checkout.root,
    label: `${checkout.label}-${proxies}`,
    ...(intervalMs !== undefined ? { lrsIntervalMs: intervalMs } : {}),
    nodeArgs: [...NODE_ARGS, ...(args['cpu-prof'] ? ['--cpu-prof', '--cpu-prof-dir', resolve(args['cpu-prof'], checkout.label)] : [])],
  });
  try {
    const argv = ['-target', server.xds, '-proxies', String(proxies), '-clusters', String(clusters), '-endpoints', String(endpoints)];
    argv.push('-extensions', String(extensions), '-warmup', `${intervalMs === undefined ? 10_000 : Math.max(3 * intervalMs, 4000)}ms`, '-duration', `${seconds}s`, '-server-pid', String(server.pid));
    const out = await new Promise<string>((resolve, reject) => {
      const child = spawn(bins.lrsclient, argv, { stdio: ['ignore', 'pipe', 'inherit'] });
      let text = '';
      child.stdout.on('data', (b: Buffer) => (text += b.toString()));
      child.once('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`lrsclient exited with ${code}: ${text}`))));
    });
    const line = JSON.parse(out.trim().split('\n').at(-1) as string) as Line;
    await expectReportsKept(server.admin as string);
    return line;
  } finally {
    await server.stop();
  }
}

/**
 * Every endpoint of the first cluster has a sample from the fleet: the server kept what the fleet
 * reported. Without this a fleet naming clusters or endpoints the catalog lacks is read and
 * dropped, and the figures leave out the aggregation (as they did before lrs35).
 */
async function expectReportsKept(admin: string): Promise<void> {
  const res = await fetch(`${admin}/v1/weights/${clusterName(0)}`);
  if (!res.ok) throw new Error(`GET /v1/weights/${clusterName(0)}: ${res.status} ${await res.text()}`);
  const body = (await res.json()) as { endpoints?: { explanation?: { freshness?: string } }[] };
  // Stale or expired still means kept (a long --interval-ms outlasts the engine's freshness); 'none' never got one.
  const sampled = (body.endpoints ?? []).filter((e) => e.explanation?.freshness !== undefined && e.explanation.freshness !== 'none').length;
  if (sampled !== endpoints) throw new Error(`${sampled} of ${endpoints} endpoints of ${clusterName(0)} have a sample: the server did not keep the fleet's reports`);
}

const dir = mkdtempSync(join(tmpdir(), 'fulcrum-lrs-fleet-'));
const rows: { proxies: number; label: string; line: Line }[] = [];
try {
  for (let r = 0; r < repeat; r++) {
    for (const proxies of fleets) {
      const order = r % 2 === 0 ? checkouts : [...checkouts].reverse();
      for (const checkout of order) {
        const line = await runOne(dir, checkout, proxies);
        log(`${checkout.label} ${proxies} proxies: ${JSON.stringify(line)}`);
        rows.push({ proxies, label: checkout.label, line });
      }
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};
console.log(
  `LRS fleet: ${clusters} clusters × ${endpoints} endpoints and a Node of ${extensions} extensions in every report, every ${intervalMs === undefined ? "fulcrum's default interval (1–2 s)" : `${intervalMs} ms`}; server CPU over ${seconds} s, median of ${repeat}; ` +
    `node ${NODE_ARGS.join(' ') || '(no options)'}; load ${loadavg().map((x) => x.toFixed(1)).join(' ')}; ${checkouts.map((c) => `${c.label} ${commit(c.root)}`).join(', ')}`,
);
// A server that cannot keep up reads fewer reports than the fleet sends (gRPC's flow control holds
// the senders back): its CPU per second is capped, so the comparison is per entry read.
console.log(
  '| proxies | ' + checkouts.map((c) => `${c.label}: entries/s, CPU s/s, µs per entry, interval asked`).join(' | ') + (checkouts.length > 1 ? ' | ratio of µs per entry, this ÷ other |' : ' |'),
);
console.log('|---|' + checkouts.map(() => '---|').join('') + (checkouts.length > 1 ? '---|' : ''));
const summary: Record<string, unknown>[] = [];
for (const proxies of fleets) {
  const per = checkouts.map((c) => {
    const mine = rows.filter((x) => x.proxies === proxies && x.label === c.label).map((x) => x.line);
    const entries = median(mine.map((l) => l.entriesPerSec));
    const cpu = median(mine.map((l) => l.serverCpuPerSec));
    const usPerEntry = median(mine.map((l) => (l.entriesPerSec > 0 ? (l.serverCpuPerSec / l.entriesPerSec) * 1e6 : Number.NaN)));
    return { label: c.label, entries, cpu, usPerEntry, intervalMs: median(mine.map((l) => l.intervalMs)), streams: Math.min(...mine.map((l) => l.streams)) };
  });
  const ratio = per.length > 1 ? (per[0]?.usPerEntry as number) / (per[1]?.usPerEntry as number) : undefined;
  const cell = (p: (typeof per)[number]): string =>
    `${Math.round(p.entries).toLocaleString('en-US')}, ${p.cpu.toFixed(3)}, ${p.usPerEntry.toFixed(1)}, ${p.intervalMs} ms${p.streams < proxies ? ` (${p.streams} streams open)` : ''}`;
  console.log(`| ${proxies} | ${per.map(cell).join(' | ')} |${ratio !== undefined ? ` ${ratio.toFixed(2)} |` : ''}`);
  summary.push({ proxies, per, ratio });
}
console.log(JSON.stringify({ bench: 'lrs-fleet', clusters, endpoints, extensions, intervalMs, seconds, repeat, rows: summary }));
