/**
 * One endpoint write's publish (translate + cache update) with node groups: 1,000 clusters × 100
 * endpoints, G node groups each with a listener routing to one cluster and nine more clusters
 * selected, one endpoint's weight changed per write (a different cluster each time). Medians of
 * 40 writes per group count. With `--other DIR` the same writes also run through that
 * checkout's Translator and XdsCache, interleaved write by write, and the ratio is printed.
 *
 *   npx tsx bench/translate-node-groups.ts [--groups 0,20,100] [--every] [--other /path/to/checkout]
 */
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import YAML from 'yaml';
import { parseConfig } from '../src/sources/config-file.js';
import { endpointKey } from '../src/catalog/endpoint-key.js';
import type { Catalog } from '../src/catalog/types.js';
import type { WeightOverrides } from '../src/catalog/weight-overrides.js';
import { Translator } from '../src/xds/translator.js';
import { XdsCache } from '../src/xds/cache.js';
import { helpIfAsked } from './help.js';

helpIfAsked(import.meta.url);
const { values } = parseArgs({ options: { groups: { type: 'string', default: '0,20,100' }, every: { type: 'boolean', default: false }, other: { type: 'string' } } });
const CLUSTERS = 1_000;
const ENDPOINTS = 100;
const WRITES = values.every ? 15 : 40;
const name = (c: number): string => `c${String(c).padStart(4, '0')}`;

function catalogWith(groups: number): Catalog {
  const clusters = Array.from({ length: CLUSTERS }, (_, c) => ({
    name: name(c),
    endpoints: Array.from({ length: ENDPOINTS }, (_, i) => ({ address: `10.${c >> 8}.${c & 255}.${i}`, port: 8080, weight: 1 + i })),
  }));
  const listeners = Array.from({ length: groups }, (_, g) => ({ name: `l${g}`, address: '127.0.0.1', port: 10_000 + g, routes: [{ prefix: '/', cluster: name(g * 10) }] }));
  const nodeGroups = Array.from({ length: groups }, (_, g) => ({ nodeCluster: `g${g}`, listeners: [`l${g}`], clusters: Array.from({ length: 9 }, (_, k) => name(g * 10 + k + 1)) }));
  return parseConfig(YAML.stringify({ clusters, listeners, nodeGroups }), 'bench').catalog;
}

/** Write k: cluster (k × 37) mod CLUSTERS gets its first endpoint's weight changed (a new cluster object, as the stores make). */
function written(c: Catalog, k: number): Catalog {
  const at = (k * 37) % CLUSTERS;
  return { ...c, clusters: c.clusters.map((x, j) => (j === at ? { ...x, endpoints: [{ ...x.endpoints[0]!, weight: 50 + k }, ...x.endpoints.slice(1)] } : x)) };
}

interface Publisher {
  translate(c: Catalog, weights?: WeightOverrides): unknown;
}

/** Publication k of --every: one endpoint's weight in every cluster. */
function everyCluster(c: Catalog, k: number): WeightOverrides {
  return new Map(c.clusters.map((x) => [x.name, new Map([[endpointKey(x.endpoints[0]!), { weight: 100 + k }]])]));
}

function publisherOf(T: typeof Translator, C: typeof XdsCache, first: Catalog): Publisher {
  const translator = new T();
  const cache = new C();
  cache.update(translator.translate(first));
  return { translate: (c, weights) => cache.update(translator.translate(c, weights)) };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1] ?? Number.NaN;

const other = values.other
  ? {
      Translator: ((await import(`${values.other}/src/xds/translator.ts`)) as { Translator: typeof Translator }).Translator,
      XdsCache: ((await import(`${values.other}/src/xds/cache.ts`)) as { XdsCache: typeof XdsCache }).XdsCache,
    }
  : undefined;
console.log(`${CLUSTERS} clusters × ${ENDPOINTS} endpoints, ${values.every ? 'new weights for every cluster' : 'one endpoint write'} per publish, medians of ${WRITES}; load ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
console.log(`| node groups | this ms | ${other ? 'other ms | this ÷ other |' : ''}\n|---|---|${other ? '---|---|' : ''}`);
for (const groups of values.groups.split(',').map(Number)) {
  let catalog = catalogWith(groups);
  const mine = publisherOf(Translator, XdsCache, catalog);
  const theirs = other ? publisherOf(other.Translator, other.XdsCache, catalog) : undefined;
  const times: [number[], number[]] = [[], []];
  for (let k = 0; k < WRITES; k++) {
    const weights = values.every ? everyCluster(catalog, k) : undefined;
    if (!values.every) catalog = written(catalog, k);
    const order = k % 2 === 0 ? ([[mine, 0], [theirs, 1]] as const) : ([[theirs, 1], [mine, 0]] as const);
    for (const [p, slot] of order) {
      if (!p) continue;
      const started = performance.now();
      p.translate(catalog, weights);
      times[slot].push(performance.now() - started);
    }
  }
  const [a, b] = [median(times[0]), median(times[1])];
  console.log(`| ${groups} | ${a.toFixed(2)} | ${other ? `${b.toFixed(2)} | ${(a / b).toFixed(3)} |` : ''}`);
}
