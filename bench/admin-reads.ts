/**
 * The admin API's big reads at 100k endpoints: how long a GET of every cluster (and of one big
 * cluster) takes and how long a request waits behind it, side by side for two builds.
 *
 *   npx tsx bench/admin-reads.ts [--clusters 1000] [--endpoints 100] [--big 20000] [--reads 5] [--paths P,P] [--base DIR]
 *
 * Starts `node --max-semi-space-size=4 --v8-pool-size=1 dist/main.js` of this checkout (then of
 * --base; run `npm run build` in each first, and the bench twice with the builds swapped for both
 * orders) on a block-style config of --clusters × --endpoints plus one cluster of --big endpoints,
 * and once it serves, GETs each of --paths (default /v1/clusters,/v1/clusters/big) --reads times (one at a time,
 * after one warm-up read each) while a /healthz probe runs every 5 ms from this process. Prints,
 * per build and path, the median read time, the answer's size, and the longest probe wait (median
 * and max over the reads). Not a test.
 */
import { appendFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { helpIfAsked, intOption } from './help.js';
import { blockConfig, median, probeHealthz, startBuild } from './served-build.js';

helpIfAsked(import.meta.url);
const { values } = parseArgs({
  options: {
    clusters: { type: 'string', default: '1000' },
    endpoints: { type: 'string', default: '100' },
    big: { type: 'string', default: '20000' },
    reads: { type: 'string', default: '5' },
    paths: { type: 'string', default: '/v1/clusters,/v1/clusters/big' },
    base: { type: 'string' },
  },
});
const n = (name: 'clusters' | 'endpoints' | 'big' | 'reads'): number => intOption(name, values[name]);
const [CLUSTERS, ENDPOINTS, BIG, READS] = [n('clusters'), n('endpoints'), n('big'), n('reads')];

function bigCluster(): string {
  const lines = ['  - name: big', '    endpoints:'];
  for (let e = 0; e < BIG; e++) lines.push(`      - address: 10.200.${(e >> 8) & 255}.${e & 255}`, `        port: ${8000 + (e >> 16)}`);
  return `${lines.join('\n')}\n`;
}

interface PathRun {
  readonly path: string;
  readonly ms: number[];
  readonly waitMs: number[];
  bytes: number;
}

async function read(admin: number, run: PathRun, timed: boolean): Promise<void> {
  const probe = probeHealthz(admin);
  const t0 = performance.now();
  const got = fetch(`http://127.0.0.1:${admin}${run.path}`).then(async (r) => ({ res: r, body: await r.arrayBuffer(), ms: performance.now() - t0 }));
  // The probe stops whatever the read does (a failed read must not leave it running).
  const [outcome, wait] = await Promise.all([got.then((v) => ({ ok: true as const, v }), (err: unknown) => ({ ok: false as const, err })), got.then(() => undefined, () => undefined).then(() => probe.stop())]);
  if (!outcome.ok) throw outcome.err;
  const { res, body, ms } = outcome.v;
  if (res.status !== 200) throw new Error(`GET ${run.path}: ${res.status}`);
  if (!timed) return;
  run.ms.push(ms);
  run.waitMs.push(wait);
  run.bytes = body.byteLength;
}

async function series(repo: string): Promise<PathRun[]> {
  const dir = await mkdtemp(join(tmpdir(), 'fulcrum-reads-'));
  const configPath = join(dir, 'fulcrum.yaml');
  await writeFile(configPath, blockConfig(CLUSTERS, ENDPOINTS));
  await appendFile(configPath, bigCluster());
  const server = await startBuild(repo, configPath, join(dir, 'data'));
  try {
    const runs: PathRun[] = (values.paths ?? '').split(',').map((path) => ({ path, ms: [], waitMs: [], bytes: 0 }));
    for (const run of runs) {
      await read(server.admin, run, false);
      for (let r = 0; r < READS; r++) await read(server.admin, run, true);
    }
    return runs;
  } finally {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

const f0 = (x: number): string => x.toFixed(0);
const builds = [{ name: 'this', repo: process.cwd() }, ...(values.base ? [{ name: 'base', repo: resolve(values.base) }] : [])];
process.stdout.write(`admin reads: ${CLUSTERS} × ${ENDPOINTS} endpoints + one of ${BIG}, ${READS} reads per path, load ${loadavg()[0]?.toFixed(2)}\n\n`);
process.stdout.write('| build | GET | bytes | read ms (median) | longest probe wait ms (median, max) |\n|---|---|---|---|---|\n');
for (const b of builds) {
  for (const run of await series(b.repo)) {
    process.stdout.write(`| ${b.name} | ${run.path} | ${run.bytes} | ${f0(median(run.ms))} | ${f0(median(run.waitMs))}, ${f0(Math.max(...run.waitMs))} |\n`);
  }
}
process.stdout.write(`\nload ${loadavg()[0]?.toFixed(2)} at the end\n`);
