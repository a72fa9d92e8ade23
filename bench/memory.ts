import { execFile, fork, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { ClientCommand } from './fanout-client.js';
import { startKubeRun } from './kube-run.js';

const HELP = `Memory of a running fulcrum, measured from outside (/proc/PID/status VmRSS) as it is deployed.

  npx tsx bench/memory.ts [options] [-- node --max-semi-space-size=4 --v8-pool-size=1 dist/main.js]

Starts the command (default: node --max-semi-space-size=4 --v8-pool-size=1 dist/main.js, what \`npm start\` runs,
so run \`npm run build\` first) on a generated catalog, then prints:
  serving   RSS once serving (settled), before any proxy connects
  rest      the same after --idle-ms with nothing to do (fulcrum compacts its heap once, from 2 s
            after it serves, when its event loop is quiet; this is the steady state), with V8's
            committed spaces from /metrics
  streams   RSS with --streams ADS streams connected (one HTTP/2 connection each, as Envoys
            connect), each subscribed to CDS and every cluster's EDS, after --pushes weight
            changes reached and were ACKed by every stream, first with half of them, then all:
            (RSS - rest) / streams, which includes what any load adds once (V8's young
            generation grows to its maximum, code, caches), and the marginal cost of a stream,
            (RSS(all) - RSS(half)) / (streams - half), which does not
  rounds    RSS after --rounds more rounds of --streams streams connecting, syncing, receiving
            one push and leaving (what a fleet's reconnects leave behind)
The streams are opened by bench/fanout-client.ts workers (separate processes).

Options:
  --streams N     streams per round (default 1000)
  --protocol P    sotw or delta (default sotw)
  --workers N     client processes (default 2)
  --pushes N      weight changes while connected (default 3)
  --rounds N      connect/leave rounds after the first (default 3)
  --clusters N    clusters in the catalog (default 100)
  --endpoints N   endpoints per cluster (default 20)
  --idle-ms N     how long the idle wait for "rest" is (default 45000; 0 skips it)
  --settle-ms N   wait this long after the pushes before each stream reading, and after the
                  rounds before the last reading (default 0): a fleet at rest, where V8's memory
                  reducer may have compacted and fulcrum handed freed native memory back
                  (40000 in RESULTS.md)
  --extensions N  extensions each stream's Node lists, as an Envoy lists those compiled into it
                  (default 0: a bare node, as every figure before 2026-12-05; 516: Envoy 1.40's,
                  a 61 KB first request per stream)
  --config FILE   serve this config instead of the generated catalog ("rest" only, no streams)
  --kube          a Kubernetes run: start etcd + kube-apiserver (.tools/bin) with 20 labelled
                  Services of 10 endpoints, and serve --config (default examples/fulcrum.yaml)
                  with the Kubernetes source enabled against it ("rest" only, no streams)
  --kube-services N, --kube-endpoints N   the --kube run's Services and endpoints per Service
                  (default 20 and 10; 1000 and 100 for 100,000 endpoints)
  --gc            run a full garbage collection in the server before each reading (it is started
                  with --expose-gc and bench/gc-on-signal.cjs; SIGUSR2 collects): per-stream figures
                  then hold what the streams keep, not how much garbage V8 had not yet collected
  --heap-snapshots DIR  write a V8 heap snapshot of the server into DIR at the half and the full
                  stream count (the server is started with --heapsnapshot-signal=SIGUSR2); group
                  them per stream with bench/heap-groups.ts
  --malloc-trim   after each stream reading, call glibc's malloc_trim(0) in the server (through
                  gdb) and read RSS again: the difference is freed malloc memory the allocator had
                  kept (fragmentation), not memory anything holds
  -h, --help      this text
`;

const { values: args, positionals } = parseArgs({
  options: {
    streams: { type: 'string', default: '1000' },
    protocol: { type: 'string', default: 'sotw' },
    workers: { type: 'string', default: '2' },
    pushes: { type: 'string', default: '3' },
    rounds: { type: 'string', default: '3' },
    clusters: { type: 'string', default: '100' },
    endpoints: { type: 'string', default: '20' },
    'idle-ms': { type: 'string', default: '45000' },
    'settle-ms': { type: 'string', default: '0' },
    extensions: { type: 'string', default: '0' },
    config: { type: 'string' },
    kube: { type: 'boolean', default: false },
    'kube-services': { type: 'string', default: '20' },
    'kube-endpoints': { type: 'string', default: '10' },
    'heap-snapshots': { type: 'string' },
    'malloc-trim': { type: 'boolean', default: false },
    gc: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
  allowPositionals: true,
});
if (args.help) {
  process.stdout.write(HELP);
  process.exit(0);
}
const num = (name: keyof typeof args): number => {
  const n = Number(args[name]);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name}: expected a whole number, got ${String(args[name])}`);
  return n;
};
const streams = num('streams');
if (args.protocol !== 'sotw' && args.protocol !== 'delta') throw new Error(`--protocol: expected sotw or delta, got ${String(args.protocol)}`);
const protocol: 'sotw' | 'delta' = args.protocol;
const snapshotDir = args['heap-snapshots'];
if (snapshotDir && args.gc) throw new Error('--gc and --heap-snapshots both use SIGUSR2: choose one');
const gcFlags = args.gc ? ['--expose-gc', '--require', join(process.cwd(), 'bench/gc-on-signal.cjs')] : [];
// A command of one's own is run as given: without the collector on SIGUSR2 the first reading waited
// forever (the bench then ended with status 13 and no output).
if (args.gc && positionals.length > 0 && !positionals.some((a) => a.endsWith('gc-on-signal.cjs')))
  throw new Error(`--gc with a command: add ${gcFlags.join(' ')} to its node options`);
const command =
  positionals.length > 0
    ? positionals
    : [process.execPath, '--max-semi-space-size=4', '--v8-pool-size=1', ...(snapshotDir ? ['--heapsnapshot-signal=SIGUSR2'] : []), ...gcFlags, join(process.cwd(), 'dist/main.js')];
const MiB = 1024 * 1024;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The generated catalog; `bump` sets the first endpoint's weight (each push changes it). */
function catalogYaml(bump: number): string {
  // Every stream comes from 127.0.0.1: the per-peer limits (1,000 connections by default) are raised.
  const many = 1_000_000;
  const limits = `{ maxConnectionsPerPeer: ${many}, maxConnections: ${many}, maxStreamsPerPeer: ${many}, maxStreams: ${many} }`;
  const lines = [`server: { xds: { debounceQuietMs: 0, limits: ${limits} } }`, 'clusters:'];
  for (let c = 0; c < num('clusters'); c++) {
    lines.push(`  - name: c${c}`, '    endpoints:');
    for (let e = 0; e < num('endpoints'); e++) {
      const weight = c === 0 && e === 0 ? bump : 1;
      lines.push(`      - { address: 10.${c >> 8}.${c & 255}.${e + 1}, port: 8080, weight: ${weight} }`);
    }
  }
  return `${lines.join('\n')}\n`;
}

async function rssOf(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? NaN) * 1024;
}

/** Polls until `ready()` holds; the deadline is generous (the machine is shared). */
async function until(what: string, ready: () => Promise<boolean>, ms = 180_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await ready())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/**
 * RSS once it has settled: samples a second apart that stayed within 1 % for SETTLED_SPAN_S
 * seconds, or after 20 s (after a full GC with --gc). The span is longer than the server's
 * native-memory trimmer's check (5 s), so memory a collection freed is read after its trim.
 */
const SETTLED_SPAN_S = 6;
async function settledRss(pid: number): Promise<number> {
  if (args.gc) {
    process.kill(pid, 'SIGUSR2');
    await sleep(1_000);
  }
  const samples = [await rssOf(pid)];
  for (let i = 0; i < 20; i++) {
    await sleep(1_000);
    samples.push(await rssOf(pid));
    const span = samples.slice(-SETTLED_SPAN_S - 1);
    if (span.length > SETTLED_SPAN_S && Math.max(...span) - Math.min(...span) < Math.min(...span) / 100) break;
  }
  return samples.at(-1) ?? 0;
}

/** With --malloc-trim: RSS after glibc handed freed memory back (malloc_trim(0), called through gdb), as a note. */
async function trimmedNote(pid: number): Promise<string> {
  if (!args['malloc-trim']) return '';
  await new Promise<void>((resolve, reject) =>
    execFile('gdb', ['-p', String(pid), '-batch', '-ex', 'call (int)malloc_trim(0)'], { timeout: 120_000 }, (err) => (err ? reject(err) : resolve())),
  );
  await sleep(500);
  return `; after malloc_trim ${((await rssOf(pid)) / MiB).toFixed(1)} MiB`;
}

/** V8's committed spaces and external memory at a stream reading (what of RSS is V8's, what is native). */
async function committedNote(server: Server): Promise<string> {
  return `; ${await restBreakdown(server)}`;
}

interface Server {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly xds: number;
  metric(pattern: RegExp): Promise<number>;
  /** The server's output so far (its last 100,000 characters). */
  log(): string;
}

async function startServer(configPath: string, dataDir: string): Promise<Server> {
  const [bin = process.execPath, ...rest] = command;
  const child = spawn(bin, [...rest, '--config', configPath, '--xds-port', '0', '--data-dir', dataDir], { stdio: 'pipe', cwd: snapshotDir ?? process.cwd() });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-100_000)));
  child.stderr?.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-100_000)));
  const ports = (): { admin: number; xds: number } | undefined => {
    const started = /"xdsPort":(\d+),"adminPort":(\d+)/.exec(out);
    return started ? { xds: Number(started[1]), admin: Number(started[2]) } : undefined;
  };
  await until('fulcrum to start', async () => {
    if (child.exitCode !== null) throw new Error(`fulcrum exited ${child.exitCode}:\n${out}`);
    return ports() !== undefined;
  });
  const { admin, xds } = ports() ?? { admin: 0, xds: 0 };
  await until('/readyz', () => fetch(`http://127.0.0.1:${admin}/readyz`).then((r) => r.ok, () => false));
  const metric = async (pattern: RegExp): Promise<number> => {
    const text = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
    return Number(pattern.exec(text)?.[1] ?? 0);
  };
  return { child, pid: child.pid ?? 0, xds, metric, log: () => out };
}

const EDS_ACKS = /^xds_convergence_seconds_count\{type="(?:EDS|eds)"\} (\d+)/m;
const RELOADS_OK = /^fulcrum_config_reloads_total\{result="ok"\} (\d+)/m;
const CONNECTED = new RegExp(`^xds_connected_proxies\\{protocol="${protocol}"\\} (\\d+)`, 'm');

/** Client workers holding `streams` streams, each on its own connection, all synced. */
async function connect(server: Server, streams: number): Promise<ChildProcess[]> {
  const workers = Math.max(1, num('workers'));
  const clients = Array.from({ length: workers }, () => fork('bench/fanout-client.ts', [], { execArgv: ['--import', 'tsx'], stdio: 'inherit' }));
  await Promise.all(
    clients.map(async (client, worker) => {
      const share = Math.floor(streams / workers) + (worker < streams % workers ? 1 : 0);
      const opened = new Promise<{ synced: number; failed: number }>((resolve) =>
        client.on('message', (m: { type: string; synced: number; failed: number }) => m.type === 'opened' && resolve(m)),
      );
      const open: ClientCommand = { cmd: 'open', address: `127.0.0.1:${server.xds}`, streams: share, perChannel: 1, worker, batch: 50, batchPauseMs: 20, window: 0, protocol, extensions: num('extensions') };
      client.send(open);
      const { synced, failed } = await opened;
      if (synced !== share) throw new Error(`worker ${worker}: ${synced} of ${share} streams synced, ${failed} failed`);
    }),
  );
  return clients;
}

async function disconnect(server: Server, clients: ChildProcess[]): Promise<void> {
  for (const client of clients) client.send({ cmd: 'stop' } satisfies ClientCommand);
  await Promise.all(clients.map((c) => new Promise((r) => c.once('exit', r))));
  await until('every stream to leave', async () => (await server.metric(CONNECTED)) === 0);
}

/** Rewrites the config (atomically, as an editor would) and waits until every stream ACKed the change. */
async function push(server: Server, configPath: string, bump: number, streams: number): Promise<void> {
  const before = await server.metric(EDS_ACKS);
  const reloads = await server.metric(RELOADS_OK);
  const write = async (): Promise<void> => {
    await writeFile(`${configPath}.tmp`, catalogYaml(bump));
    await rename(`${configPath}.tmp`, configPath);
  };
  await write();
  // A file watch can miss an event on a loaded machine: write again until the reload is seen.
  for (let attempt = 0; (await server.metric(RELOADS_OK)) === reloads && attempt < 5; attempt++) {
    await sleep(10_000);
    if ((await server.metric(RELOADS_OK)) === reloads) await write();
  }
  await until(`push ${bump} to reach every stream`, async () => (await server.metric(EDS_ACKS)) >= before + streams);
}

/** Asks the server for a heap snapshot (written into its cwd) and waits until the file is complete. */
async function heapSnapshot(server: Server, label: string): Promise<void> {
  if (!snapshotDir) return;
  const before = new Set(await readdir(snapshotDir));
  server.child.kill('SIGUSR2');
  let file = '';
  await until('the heap snapshot file', async () => {
    file = (await readdir(snapshotDir)).find((f) => f.endsWith('.heapsnapshot') && !before.has(f)) ?? '';
    return file !== '';
  });
  // V8 writes the file while the process is paused; it is complete once its size stops changing.
  let size = -1;
  await until('the heap snapshot to be written', async () => {
    await sleep(2_000);
    const now = (await stat(join(snapshotDir, file))).size;
    const done = now === size && now > 0;
    size = now;
    return done;
  }, 600_000);
  await rename(join(snapshotDir, file), join(snapshotDir, `${label}.heapsnapshot`));
}

const HEAP_USED = /^nodejs_heap_size_used_bytes (\S+)/m;

/**
 * Where the RSS at rest goes, from prom-client's default metrics: V8's spaces as committed (young
 * generation, old generation, code, large objects) and the memory V8 accounts outside its heap.
 * The rest of the RSS is the node binary's and shared libraries' pages and native allocations.
 */
async function restBreakdown(server: Server): Promise<string> {
  const space = (name: string) => server.metric(new RegExp(`^nodejs_heap_space_size_total_bytes\\{space="${name}"\\} (\\S+)`, 'm'));
  const [young, old, code, large, external] = await Promise.all([space('new'), space('old'), space('code'), space('large_object'), server.metric(/^nodejs_external_memory_bytes (\S+)/m)]);
  const trimsBy = (reason: string) => server.metric(new RegExp(`^fulcrum_native_memory_trims_total\\{reason="${reason}"\\} (\\S+)`, 'm'));
  const [growth, collected, interval, returned] = await Promise.all([
    trimsBy('growth'),
    trimsBy('collected'),
    trimsBy('interval'),
    server.metric(/^fulcrum_native_memory_returned_bytes_total (\S+)/m),
  ]);
  const trims = growth + collected + interval;
  const mib = (n: number) => `${(n / MiB).toFixed(1)}`;
  return `V8 committed: young ${mib(young)}, old ${mib(old)}, code ${mib(code)}, large ${mib(large)} MiB; external ${mib(external)} MiB; native trims so far ${trims} (growth ${growth}, collected ${collected}, interval ${interval}; ${mib(returned)} MiB handed back)`;
}
const row = (what: string, rss: number, heap: number, note = ''): string =>
  `| ${what} | ${(rss / MiB).toFixed(1)} MiB | ${(heap / MiB).toFixed(1)} MiB | ${note} |`;

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'fulcrum-memory-'));
  const kube = args.kube ? await startKubeRun(args.config ?? 'examples/fulcrum.yaml', num('kube-services'), num('kube-endpoints')) : undefined;
  const given = kube?.configPath ?? args.config;
  const configPath = given ?? join(dir, 'catalog.yaml');
  if (!given) await writeFile(configPath, catalogYaml(2));
  const server = await startServer(configPath, join(dir, 'data')).catch(async (err: unknown) => {
    await kube?.stop();
    throw err;
  });
  const what = kube ? `${args.config ?? 'examples/fulcrum.yaml'} + Kubernetes source` : (given ?? `${num('clusters')} clusters x ${num('endpoints')} endpoints, ${protocol}`);
  const out: string[] = [`${command.join(' ')}; ${what}`, '', '| stage | RSS | JS heap used | |', '|---|---|---|---|'];
  try {
    const serving = await settledRss(server.pid);
    out.push(row('serving (settled, no proxy yet)', serving, await server.metric(HEAP_USED)));
    await sleep(num('idle-ms'));
    const rest = num('idle-ms') > 0 ? await settledRss(server.pid) : serving;
    const restHeap = await server.metric(HEAP_USED);
    if (num('idle-ms') > 0) out.push(row(`rest (after ${num('idle-ms') / 1000} s idle, no proxy)`, rest, restHeap, await restBreakdown(server)));
    else out[out.length - 1] = row('serving (settled, no proxy yet)', serving, restHeap, await restBreakdown(server));
    if (!given && streams > 0) {
      const half = Math.floor(streams / 2);
      const perStream = (bytes: number, n: number): string => `${(bytes / n / 1024).toFixed(1)} KiB`;
      const first = await connect(server, half);
      for (let p = 0; p < num('pushes'); p++) await push(server, configPath, 3 + p, half);
      await sleep(num('settle-ms'));
      const halfRss = await settledRss(server.pid);
      await heapSnapshot(server, `${protocol}-${half}`);
      out.push(row(`${half} streams after ${num('pushes')} pushes`, halfRss, await server.metric(HEAP_USED), `${perStream(halfRss - rest, half)} per stream${await committedNote(server)}${await trimmedNote(server.pid)}`));
      const second = await connect(server, streams - half);
      for (let p = 0; p < num('pushes'); p++) await push(server, configPath, 10 + p, streams);
      await sleep(num('settle-ms'));
      const connected = await settledRss(server.pid);
      const heap = await server.metric(HEAP_USED);
      await heapSnapshot(server, `${protocol}-${streams}`);
      out.push(
        row(
          `${streams} streams after ${num('pushes')} more pushes`,
          connected,
          heap,
          `${perStream(connected - rest, streams)} per stream; marginal ${perStream(connected - halfRss, streams - half)} per stream${await committedNote(server)}${await trimmedNote(server.pid)}`,
        ),
      );
      await disconnect(server, [...first, ...second]);
      for (let r = 0; r < num('rounds'); r++) {
        const round = await connect(server, streams);
        await push(server, configPath, 100 + r, streams);
        await disconnect(server, round);
      }
      await sleep(num('settle-ms'));
      const after = await settledRss(server.pid);
      out.push(
        row(`after ${num('rounds')} more rounds of ${streams} connecting and leaving`, after, await server.metric(HEAP_USED), `${((after - rest) / MiB).toFixed(1)} MiB above rest${await committedNote(server)}`),
      );
    }
    // What the start-up heap collection decided (its log line), when it ran by now.
    const collected = server.log().split('\n').filter((l) => l.includes('start-up heap collection'));
    process.stdout.write(`${out.join('\n')}\n${collected.map((l) => `\n${l}`).join('')}\n`);
  } finally {
    server.child.kill('SIGTERM');
    await new Promise((r) => server.child.once('exit', r));
    await kube?.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
