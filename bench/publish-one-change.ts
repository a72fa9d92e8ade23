/**
 * One endpoint write at 100k endpoints, in process, phase by phase (issue 13, admin p99): the
 * store write (durably: fsync included), reading the catalog back, then what a publish does with
 * it — translate, cache update, and what the first streams then read from the new snapshot (a
 * wildcard CDS body, one EDS subscription's update, a Delta stream's type versions and the
 * snapshot version). Every write changes a weight (the stored one + 1), also on a reused store.
 * Median / p99 / max per phase over N writes; the store is seeded once into --dir (kept).
 * `--eds-names all`: the EDS subscription names every cluster, as an Envoy's does (its CDS
 * clusters' assignments); the default names one cluster.
 *
 *   npx tsx bench/publish-one-change.ts [--clusters 1000] [--endpoints 100] [--writes 300] [--dir DIR] [--eds-names one|all]
 */
import { existsSync, mkdirSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parseClusterBody, parseEndpointBody } from '../src/admin/resources.js';
import { openStore, type Store } from '../src/catalog/store/store.js';
import { subscription, XdsCache, type SotwBody } from '../src/xds/cache.js';
import { TYPE } from '../src/xds/envoy-api.js';
import { DEFAULT_GROUP } from '../src/xds/resource-set.js';
import { Translator } from '../src/xds/translator.js';
import { helpIfAsked } from './help.js';

helpIfAsked(import.meta.url);
const { values } = parseArgs({
  options: {
    clusters: { type: 'string', default: '1000' },
    endpoints: { type: 'string', default: '100' },
    writes: { type: 'string', default: '300' },
    dir: { type: 'string' },
    'eds-names': { type: 'string', default: 'one' },
  },
});
const CLUSTERS = Number(values.clusters);
const PER = Number(values.endpoints);
const WRITES = Number(values.writes);
if (values['eds-names'] !== 'one' && values['eds-names'] !== 'all') throw new RangeError(`--eds-names must be one or all, got ${values['eds-names']}`);
const EDS_NAMES = values['eds-names'];
const dir = values.dir ?? join(tmpdir(), `fulcrum-publish-one-${CLUSTERS}x${PER}`);
const clusterName = (i: number): string => `c-${String(i).padStart(4, '0')}`;
const address = (i: number): string => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;

function seed(): void {
  if (existsSync(join(dir, 'fulcrum.db'))) return;
  mkdirSync(dir, { recursive: true });
  const store = openStore(dir);
  for (let c = 0; c < CLUSTERS; c++) {
    const endpoints = Array.from({ length: PER }, (_, i) => ({ address: address(c * PER + i), port: 8080, weight: 1, locality: { region: 'r1', zone: `z${i % 3}` } }));
    store.putCluster(parseClusterBody({ lbPolicy: 'ROUND_ROBIN', endpoints }, clusterName(c)), { actor: 'bench', owner: 'api' });
  }
  store.close();
}

const phases = new Map<string, number[]>();
function timed<T>(phase: string, f: () => T): T {
  const t = performance.now();
  const out = f();
  let list = phases.get(phase);
  if (!list) phases.set(phase, (list = []));
  list.push(performance.now() - t);
  return out;
}

async function run(store: Store): Promise<number> {
  const translator = new Translator();
  const cache = new XdsCache();
  cache.update(translator.translate(store.catalog()));
  const cds = subscription(TYPE.cluster, true, []);
  const eds = subscription(TYPE.endpoint, false, EDS_NAMES === 'all' ? Array.from({ length: CLUSTERS }, (_, i) => clusterName(i)) : [clusterName(0)]);
  let cdsBody = cache.snapshotFor(DEFAULT_GROUP).sotwBody(TYPE.cluster, cds);
  let edsBody: SotwBody = cache.snapshotFor(DEFAULT_GROUP).sotwBody(TYPE.endpoint, eds);
  for (let w = 0; w < WRITES; w++) {
    const c = w % 2 === 0 ? 0 : (w * 7919) % CLUSTERS;
    const e = c * PER + (w % PER);
    // A weight other than the stored one, so every write is a change (also when the store is reused).
    const weight = ((store.getEndpoint(clusterName(c), address(e), 8080)?.weight ?? 1) % 90) + 2;
    const t = performance.now();
    await store.durably(() => store.putEndpoint(clusterName(c), parseEndpointBody({ weight }, address(e), 8080), { actor: 'bench', owner: 'api' }));
    (phases.get('store write, durably') ?? phases.set('store write, durably', []).get('store write, durably'))?.push(performance.now() - t);
    const catalog = timed('catalog()', () => store.catalog());
    const set = timed('translate', () => translator.translate(catalog));
    timed('cache update', () => cache.update(set));
    const snap = cache.snapshotFor(DEFAULT_GROUP);
    timed('streams read the snapshot', () => {
      const nextCds = snap.sotwBody(TYPE.cluster, cds);
      snap.keepRemoved(TYPE.cluster, cdsBody, nextCds);
      const nextEds = snap.sotwBody(TYPE.endpoint, eds);
      snap.sotwUpdate(TYPE.endpoint, edsBody, nextEds);
      snap.typeVersion(TYPE.endpoint);
      snap.typeVersion(TYPE.cluster);
      void snap.version;
      cdsBody = nextCds;
      edsBody = nextEds;
    });
  }
  return cache.snapshotFor(DEFAULT_GROUP).seq;
}

function report(published: number): void {
  process.stdout.write(`snapshots published: ${published}\n`);
  process.stdout.write(`| phase | p50 ms | p99 ms | max ms |\n|---|---|---|---|\n`);
  for (const [phase, ms] of phases) {
    const s = [...ms].sort((a, b) => a - b);
    const at = (q: number): string => (s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? Number.NaN).toFixed(2);
    process.stdout.write(`| ${phase} | ${at(0.5)} | ${at(0.99)} | ${at(1)} |\n`);
  }
}

async function main(): Promise<void> {
  seed();
  const store = openStore(dir);
  const published = await run(store).finally(() => store.close());
  process.stdout.write(`${CLUSTERS} clusters × ${PER} endpoints, ${WRITES} one-endpoint writes, EDS subscription: ${EDS_NAMES === 'all' ? 'every cluster' : 'one cluster'}; load ${loadavg().map((x) => x.toFixed(2)).join(' ')}\n`);
  report(published);
}

await main();
