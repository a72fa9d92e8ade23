/**
 * One proxy, many rounds, every round timed by stage: an endpoint PATCH through the admin API
 * until the one connected stream (SotW or Delta, the Go load client) has it, with the server traced
 * by bench/push-trace.mjs (admin request in/out, each HTTP/2 write, GC pauses, event-loop stalls).
 * Rounds run in chunks rotating over server × protocol, so a before/after and SotW/Delta see the
 * same machine. Prints, per server × protocol, the latency quantiles, the stages' quantiles, and
 * every slow round with its stages and whatever GC or stall overlapped it.
 *
 *   npx tsx bench/sotw-rounds.ts --rounds 1000 [--protocols sotw,delta] [--base DIR] [--chunk 100]
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { buildGo, clusterName, endpointAddress, repoRoot, startFulcrum, type GoBinaries, type Server } from './gcp-fanout-servers.js';
import { analyse, formatReport, type RoundTiming, type TraceEvent } from './sotw-rounds-analysis.js';

const HELP = `bench/sotw-rounds.ts: per-stage timing of single-proxy push rounds (debounce 0).
  --rounds N        rounds per server × protocol (default 1000)
  --chunk N         rounds per load-client run; runs rotate over server × protocol (default 100)
  --protocols LIST  sotw,delta (default both)
  --base DIR        another checkout (built, with node_modules) run side by side as "base"
  --settle MS       pause after each round (default 100)
  --slow MS         rounds slower than this are listed (default 10)
  --node-args S     extra node options for fulcrum, space-separated
  --keep-dir        keep the run directory (traces, rounds.json, logs)
  --analyse DIR     print the report of a kept run directory again (no run)`;

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '1000' },
    chunk: { type: 'string', default: '100' },
    protocols: { type: 'string', default: 'sotw,delta' },
    base: { type: 'string' },
    settle: { type: 'string', default: '100' },
    slow: { type: 'string', default: '10' },
    'node-args': { type: 'string', default: '' },
    'keep-dir': { type: 'boolean', default: false },
    analyse: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  process.stdout.write(`${HELP}\n`);
  process.exit(0);
}
function count(name: string, raw: string): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be an integer ≥ 1, got "${raw}"`);
  return n;
}
const ROUNDS = count('rounds', args.rounds);
const CHUNK = count('chunk', args.chunk);
const SETTLE = count('settle', args.settle);
const SLOW = Number(args.slow);
const PROTOCOLS = args.protocols.split(',').filter(Boolean);
for (const p of PROTOCOLS) if (p !== 'sotw' && p !== 'delta') throw new Error(`--protocols: "${p}" is not sotw or delta`);
const catalog = { clusters: 100, endpoints: 20 };
const target = { cluster: clusterName(50), address: endpointAddress(50, 3) };
const log = (s: string): void => void process.stderr.write(`${s}\n`);
const uptime = (): string => `load ${loadavg().map((x) => x.toFixed(2)).join(', ')}`;

interface Traced { readonly server: Server; readonly name: string; readonly traceDir: string; weight: number }

async function start(dir: string, name: string, root: string | undefined): Promise<Traced> {
  const traceDir = join(dir, `trace-${name}`);
  mkdirSync(traceDir, { recursive: true });
  // push-trace.mjs reads it; startFulcrum's child inherits this process's environment.
  process.env.FULCRUM_PUSH_TRACE = traceDir;
  const nodeArgs = ['--max-semi-space-size=4', '--import', join(repoRoot, 'bench/push-trace.mjs'), ...args['node-args'].split(' ').filter(Boolean)];
  const server = await startFulcrum(dir, { debounce: 'zero', catalog, nodeArgs, ...(root ? { root, label: name } : {}) });
  return { server, name, traceDir, weight: 100 };
}

interface ClientRound { readonly type: string; readonly t0: number; readonly max: number; readonly apiMs: number; readonly clientRunQueueMs?: number }

/** One load-client run of `rounds` rounds on one stream; the rounds' trigger times and latencies. */
function drive(bins: GoBinaries, s: Traced, protocol: string, rounds: number): ClientRound[] {
  const { trigger, body } = s.server.trigger(target.cluster, target.address, 8080);
  const argv = [
    '-target', s.server.xds, '-streams', '1', '-rounds', String(rounds), '-server-pid', String(s.server.pid),
    '-cluster', target.cluster, '-address', target.address, '-port', '8080', '-weight-base', String(s.weight),
    '-trigger', trigger, '-body', body, '-settle', `${SETTLE}ms`, ...(protocol === 'delta' ? ['-delta'] : []),
  ];
  s.weight += rounds + 1; // every round sets a weight the server does not hold yet
  const out = execFileSync(bins.loadclient, argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 20 * 60_000 });
  const lines = out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as ClientRound);
  return lines.filter((l) => l.type === 'round');
}

function readTrace(traceDir: string): TraceEvent[] {
  return readdirSync(traceDir)
    .flatMap((f) => readFileSync(join(traceDir, f), 'utf8').split('\n').filter(Boolean))
    .map((l) => JSON.parse(l) as TraceEvent)
    .sort((a, b) => a.t - b.t);
}

async function playAll(bins: GoBinaries, servers: Traced[]): Promise<Map<string, RoundTiming[]>> {
  const rounds = new Map<string, RoundTiming[]>();
  for (let done = 0; done < ROUNDS; done += CHUNK) {
    const n = Math.min(CHUNK, ROUNDS - done);
    for (const protocol of PROTOCOLS) {
      for (const s of servers) {
        const key = `${s.name} ${protocol}`;
        const got = drive(bins, s, protocol, n).map((r) => ({ server: s.name, protocol, t0: r.t0, ms: r.max, apiMs: r.apiMs, clientWaitMs: r.clientRunQueueMs }));
        rounds.set(key, [...(rounds.get(key) ?? []), ...got]);
      }
    }
    log(`  ${done + n} of ${ROUNDS} rounds (${uptime()})`);
  }
  return rounds;
}

/** The report from a run directory's rounds and traces (trace-<server>/). */
function report(dir: string, rounds: Map<string, RoundTiming[]>): string {
  const servers = new Set([...rounds.values()].flat().map((r) => r.server));
  const traces = new Map([...servers].map((name) => [name, readTrace(join(dir, `trace-${name}`))]));
  return formatReport(analyse(rounds, traces, SLOW));
}

async function main(): Promise<void> {
  if (args.analyse) {
    const rounds = new Map(JSON.parse(readFileSync(join(args.analyse, 'rounds.json'), 'utf8')) as [string, RoundTiming[]][]);
    process.stdout.write(`${report(args.analyse, rounds)}\n`);
    return;
  }
  const bins = buildGo(log);
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-sotw-rounds-'));
  log(`sotw-rounds: ${ROUNDS} rounds × ${PROTOCOLS.join('/')}, chunks of ${CHUNK}; ${uptime()}; run dir ${dir}`);
  const servers: Traced[] = [];
  try {
    if (args.base) {
      if (!existsSync(join(args.base, 'dist/main.js'))) throw new Error(`--base ${args.base}: no dist/main.js (run npm run build there)`);
      servers.push(await start(dir, 'base', args.base));
    }
    servers.push(await start(dir, 'branch', undefined));
    const rounds = await playAll(bins, servers);
    for (const s of servers) await s.server.stop();
    writeFileSync(join(dir, 'rounds.json'), JSON.stringify([...rounds]));
    process.stdout.write(`${report(dir, rounds)}\nAfter the run: ${uptime()}\n`);
  } finally {
    for (const s of servers) await s.server.stop();
    if (!args['keep-dir']) rmSync(dir, { recursive: true, force: true });
  }
}

await main();
