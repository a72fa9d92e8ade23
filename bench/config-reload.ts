/**
 * A large config file, edited while fulcrum serves it: how long each reload takes and how long a
 * request waits behind it (the event loop held by the parse, the comparison, the seed), side by
 * side for two builds.
 *
 *   npx tsx bench/config-reload.ts [--clusters 1000] [--endpoints 100] [--edits 5] [--every] [--base DIR]
 *
 * Writes a config of --clusters × --endpoints (block-style YAML, as an operator's file would be),
 * starts `node --max-semi-space-size=4 --v8-pool-size=1 dist/main.js` on it (this checkout's build,
 * then --base's; run `npm run build` in each first; run the bench twice with the builds swapped
 * for both orders), and once it serves, rewrites the file --edits times by rename, as editors
 * save: one endpoint's weight changed, or with --every every endpoint's weight. For each edit: the
 * time from the rename until the admin API serves the new weight, and the longest a /healthz probe
 * (one every 5 ms, from this process) waited during it. Also the start to serving and the server's
 * RSS after the edits and its peak (VmHWM, start included). FULCRUM_BENCH_NODE_ARGS adds server
 * flags (bench/served-build.ts). Prints a table per build and the medians; not a test.
 */
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { helpIfAsked, intOption } from './help.js';
import { blockConfig, median, probeHealthz, rssMiB, startBuild, until } from './served-build.js';

helpIfAsked(import.meta.url);
const { values } = parseArgs({
  options: {
    clusters: { type: 'string', default: '1000' },
    endpoints: { type: 'string', default: '100' },
    edits: { type: 'string', default: '5' },
    every: { type: 'boolean', default: false },
    base: { type: 'string' },
  },
});
const CLUSTERS = intOption('clusters', values.clusters);
const ENDPOINTS = intOption('endpoints', values.endpoints);
const EDITS = intOption('edits', values.edits);

/** The weight the admin API serves for the first endpoint of the first cluster (the one every edit changes). */
async function servedWeight(admin: number): Promise<number | undefined> {
  const res = await fetch(`http://127.0.0.1:${admin}/v1/clusters/c0`);
  if (!res.ok) return undefined;
  const body = (await res.json()) as { endpoints: { weight: number }[] };
  return body.endpoints[0]?.weight;
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
  await writeFile(configPath, blockConfig(CLUSTERS, ENDPOINTS, 1));
  const server = await startBuild(repo, configPath, join(dir, 'data'));
  try {
    const reloadMs: number[] = [];
    const waitMs: number[] = [];
    for (let e = 0; e < EDITS; e++) {
      const weight = 2 + e;
      await writeFile(`${configPath}.tmp`, blockConfig(CLUSTERS, ENDPOINTS, weight, values.every));
      const p = probeHealthz(server.admin);
      const t0 = performance.now();
      await rename(`${configPath}.tmp`, configPath);
      await until('the edit served', async () => (await servedWeight(server.admin)) === weight);
      reloadMs.push(performance.now() - t0);
      waitMs.push(await p.stop());
    }
    return { startMs: server.startMs, reloadMs, waitMs, rss: await rssMiB(server.child.pid ?? 0) };
  } finally {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

const f0 = (x: number): string => x.toFixed(0);

const builds = [{ name: 'this', repo: process.cwd() }, ...(values.base ? [{ name: 'base', repo: resolve(values.base) }] : [])];
process.stdout.write(`config reload: ${CLUSTERS} × ${ENDPOINTS} endpoints, ${EDITS} edits per build of ${values.every ? 'every' : 'one'} endpoint's weight, load ${loadavg()[0]?.toFixed(2)}\n`);
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
