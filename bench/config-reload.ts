/**
 * A large config file, edited while fulcrum serves it: how long each reload takes and how long a
 * request waits behind it (the event loop held by the parse), side by side for two builds.
 *
 *   npx tsx bench/config-reload.ts [--clusters 1000] [--endpoints 100] [--edits 5] [--base DIR]
 *
 * Writes a config of --clusters × --endpoints (block-style YAML, as an operator's file would be),
 * starts `node --max-semi-space-size=4 --v8-pool-size=1 dist/main.js` on it (this checkout's build,
 * then --base's; run `npm run build` in each first; run the bench twice with the builds swapped
 * for both orders), and once it
 * serves, rewrites the file --edits times (one endpoint's weight changed, by rename as editors
 * save). For each edit: the time from the rename until /metrics counts the reload, and the longest
 * a /healthz probe (one every 5 ms, from this process) waited during it. Also the start to serving
 * and the server's RSS after the edits and its peak (VmHWM, start included). Prints a table per
 * build and the medians; not a test.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { helpIfAsked } from './help.js';

helpIfAsked(import.meta.url);
const { values } = parseArgs({
  options: {
    clusters: { type: 'string', default: '1000' },
    endpoints: { type: 'string', default: '100' },
    edits: { type: 'string', default: '5' },
    base: { type: 'string' },
  },
});
const CLUSTERS = Number(values.clusters);
const ENDPOINTS = Number(values.endpoints);
const EDITS = Number(values.edits);
for (const [name, n] of [['clusters', CLUSTERS], ['endpoints', ENDPOINTS], ['edits', EDITS]] as const) {
  if (!(Number.isInteger(n) && n > 0)) throw new RangeError(`--${name} must be an integer > 0`);
}

function configText(weight: number): string {
  const lines = ['clusters:'];
  for (let c = 0; c < CLUSTERS; c++) {
    lines.push(`  - name: c${c}`, '    endpoints:');
    for (let e = 0; e < ENDPOINTS; e++) {
      lines.push(`      - address: 10.${c >> 8}.${c & 255}.${e + 1}`, '        port: 8080', `        weight: ${c === 0 && e === 0 ? weight : 1}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

interface Server {
  readonly child: ChildProcess;
  readonly admin: number;
  readonly startMs: number;
}

async function until(what: string, ready: () => Promise<boolean>, ms = 300_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await ready())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function start(repo: string, configPath: string, dataDir: string): Promise<Server> {
  const began = performance.now();
  const child = spawn(process.execPath, ['--max-semi-space-size=4', '--v8-pool-size=1', join(repo, 'dist/main.js'), '--config', configPath, '--xds-port', '0', '--admin-port', '0', '--data-dir', dataDir], {
    stdio: ['ignore', 'pipe', 'pipe'],
    cwd: repo,
  });
  let out = '';
  const keep = (d: Buffer): void => void (out = (out + d.toString()).slice(-100_000));
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  let admin = 0;
  await until('fulcrum to start', async () => {
    if (child.exitCode !== null) throw new Error(`fulcrum exited ${child.exitCode}:\n${out}`);
    admin = Number(/"adminPort":(\d+)/.exec(out)?.[1] ?? 0);
    return admin > 0;
  });
  await until('/readyz', () => fetch(`http://127.0.0.1:${admin}/readyz`).then((r) => r.ok, () => false));
  return { child, admin, startMs: performance.now() - began };
}

async function reloads(admin: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
  return Number(/^fulcrum_config_reloads_total\{result="ok"\} (\d+)/m.exec(text)?.[1] ?? 0);
}

/** Probes /healthz back to back (5 ms apart) until stopped; the longest single wait. */
function probe(admin: number): { stop(): Promise<number> } {
  let running = true;
  let longest = 0;
  const loop = (async () => {
    while (running) {
      const t0 = performance.now();
      await fetch(`http://127.0.0.1:${admin}/healthz`).then((r) => r.arrayBuffer());
      longest = Math.max(longest, performance.now() - t0);
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return longest;
    },
  };
}

/** RSS and peak RSS (VmHWM), MiB. */
async function rssMiB(pid: number): Promise<{ now: number; peak: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string): number => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN);
  return { now: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
}

interface Run {
  readonly startMs: number;
  readonly reloadMs: number[];
  readonly waitMs: number[];
  readonly rss: { now: number; peak: number };
}

async function series(repo: string): Promise<Run> {
  const dir = await mkdtemp(join(tmpdir(), 'fulcrum-reload-'));
  const configPath = join(dir, 'fulcrum.yaml');
  await writeFile(configPath, configText(1));
  const server = await start(repo, configPath, join(dir, 'data'));
  try {
    const reloadMs: number[] = [];
    const waitMs: number[] = [];
    for (let e = 0; e < EDITS; e++) {
      const before = await reloads(server.admin);
      await writeFile(`${configPath}.tmp`, configText(2 + e));
      const p = probe(server.admin);
      const t0 = performance.now();
      await rename(`${configPath}.tmp`, configPath);
      await until('the reload', async () => (await reloads(server.admin)) > before);
      reloadMs.push(performance.now() - t0);
      waitMs.push(await p.stop());
    }
    return { startMs: server.startMs, reloadMs, waitMs, rss: await rssMiB(server.child.pid ?? 0) };
  } finally {
    server.child.kill('SIGTERM');
    await new Promise((r) => (server.child.exitCode !== null ? r(undefined) : server.child.once('exit', r)));
    await rm(dir, { recursive: true, force: true });
  }
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};
const f0 = (x: number): string => x.toFixed(0);

const builds = [{ name: 'this', repo: process.cwd() }, ...(values.base ? [{ name: 'base', repo: resolve(values.base) }] : [])];
process.stdout.write(`config reload: ${CLUSTERS} × ${ENDPOINTS} endpoints, ${EDITS} edits per build, load ${loadavg()[0]?.toFixed(2)}\n`);
const results: { name: string; run: Run }[] = [];
for (const b of builds) {
  const run = await series(b.repo);
  results.push({ name: b.name, run });
  process.stdout.write(
    `${b.name.padEnd(5)} start ${f0(run.startMs)} ms; reload ms ${run.reloadMs.map(f0).join(', ')}; longest probe wait ms ${run.waitMs.map(f0).join(', ')}; RSS after ${f0(run.rss.now)} MiB, peak ${f0(run.rss.peak)} MiB (load ${loadavg()[0]?.toFixed(2)})\n`,
  );
}
process.stdout.write('\n| build | start ms | reload ms (median) | longest probe wait ms (median, max) | RSS after edits MiB | peak RSS MiB |\n|---|---|---|---|---|---|\n');
for (const { name, run } of results) {
  process.stdout.write(`| ${name} | ${f0(run.startMs)} | ${f0(median(run.reloadMs))} | ${f0(median(run.waitMs))}, ${f0(Math.max(...run.waitMs))} | ${f0(run.rss.now)} | ${f0(run.rss.peak)} |\n`);
}
