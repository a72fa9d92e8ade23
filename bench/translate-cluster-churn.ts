/**
 * A cluster created or deleted: what its publish (translate + cache update) costs at C clusters
 * × E endpoints. 40 clusters, each named to sort among the others, are created one at a time and
 * deleted again (80 publishes); medians and p90. With `--other DIR` the same publishes also run
 * through that checkout's Translator and XdsCache, interleaved publish by publish, and the
 * ratio of the medians is printed. With --grpc, this checkout publishes gRPC's form too (as once a
 * proxyless gRPC client connected; the other checkout is run as it is).
 *
 *   npx tsx bench/translate-cluster-churn.ts [--clusters 1000,10000] [--endpoints 10] [--other /path/to/checkout] [--grpc]
 */
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import YAML from 'yaml';
import type { Catalog, Cluster } from '../src/catalog/types.js';
import { parseConfig } from '../src/sources/config-file.js';
import { XdsCache } from '../src/xds/cache.js';
import { Translator } from '../src/xds/translator.js';
import { helpIfAsked } from './help.js';

helpIfAsked(import.meta.url);
const { values } = parseArgs({ options: { clusters: { type: 'string', default: '1000,10000' }, endpoints: { type: 'string', default: '10' }, other: { type: 'string' }, grpc: { type: 'boolean', default: false } } });
const ENDPOINTS = Number(values.endpoints);
const CHURN = 40;
const name = (c: number): string => `c${String(c).padStart(5, '0')}`;

function catalogOf(clusters: readonly { name: string; endpoints: unknown[] }[]): Catalog {
  return parseConfig(YAML.stringify({ clusters, listeners: [] }), 'bench').catalog;
}

function fleet(n: number): { catalog: Catalog; extra: readonly Cluster[] } {
  const endpoints = (c: number) => Array.from({ length: ENDPOINTS }, (_, i) => ({ address: `10.${(c >> 8) & 255}.${c & 255}.${i}`, port: 8080, weight: 1 + i }));
  const catalog = catalogOf(Array.from({ length: n }, (_, c) => ({ name: name(c), endpoints: endpoints(c) })));
  const extra = catalogOf(Array.from({ length: CHURN }, (_, k) => ({ name: `${name((k * 241) % n)}-new`, endpoints: [{ address: '10.200.0.1', port: 8080 }] }))).clusters;
  return { catalog, extra };
}

/** The catalog with `x` inserted at its place in name order. */
function withCluster(catalog: Catalog, x: Cluster): Catalog {
  const at = catalog.clusters.findIndex((c) => c.name > x.name);
  return { ...catalog, clusters: at < 0 ? [...catalog.clusters, x] : [...catalog.clusters.slice(0, at), x, ...catalog.clusters.slice(at)] };
}

type Publish = (c: Catalog) => void;

function publisherOf(T: typeof Translator, C: typeof XdsCache, first: Catalog, grpc = false): Publish {
  const translator = new T();
  const cache = new C();
  // Only this checkout is asked for gRPC's form: an older one takes no such argument.
  const translate = (c: Catalog) => (grpc ? translator.translate(c, undefined, undefined, { grpc }) : translator.translate(c));
  cache.update(translate(first));
  return (c) => void cache.update(translate(c));
}

const at = (xs: number[], q: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))] ?? Number.NaN;

const other = values.other
  ? {
      Translator: ((await import(`${values.other}/src/xds/translator.ts`)) as { Translator: typeof Translator }).Translator,
      XdsCache: ((await import(`${values.other}/src/xds/cache.ts`)) as { XdsCache: typeof XdsCache }).XdsCache,
    }
  : undefined;
console.log(`${CHURN} clusters created and deleted one at a time, ${ENDPOINTS} endpoints per cluster${values.grpc ? ', gRPC\'s form on here' : ''}; load ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
console.log(`| clusters | this p50 / p90 ms | ${other ? 'other p50 / p90 ms | this ÷ other (p50) |' : ''}\n|---|---|${other ? '---|---|' : ''}`);
for (const n of values.clusters.split(',').map(Number)) {
  const { catalog, extra } = fleet(n);
  const mine = publisherOf(Translator, XdsCache, catalog, values.grpc);
  const theirs = other ? publisherOf(other.Translator, other.XdsCache, catalog) : undefined;
  const times: [number[], number[]] = [[], []];
  let k = 0;
  for (const x of extra) {
    for (const next of [withCluster(catalog, x), catalog]) {
      const order = k++ % 2 === 0 ? ([[mine, 0], [theirs, 1]] as const) : ([[theirs, 1], [mine, 0]] as const);
      for (const [publish, slot] of order) {
        if (!publish) continue;
        const started = performance.now();
        publish(next);
        times[slot].push(performance.now() - started);
      }
    }
  }
  const [a, b] = times;
  console.log(`| ${n} | ${at(a, 0.5).toFixed(2)} / ${at(a, 0.9).toFixed(2)} | ${other ? `${at(b, 0.5).toFixed(2)} / ${at(b, 0.9).toFixed(2)} | ${(at(a, 0.5) / at(b, 0.5)).toFixed(3)} |` : ''}`);
}
