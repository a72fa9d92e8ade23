/**
 * One weight change → what the publisher re-translates: the whole catalog from scratch (before)
 * vs the memoizing Translator (now), for C clusters × E endpoints. Medians of 15. Then a weight
 * publication that changed one endpoint's weight in every cluster (a weight-loop tick over a busy
 * fleet): every assignment is encoded again, the Cluster resources are kept. With --grpc, gRPC's
 * form is on (as once a proxyless gRPC client connected): the bench's clusters weigh their
 * endpoints unequally, so each assignment is encoded in both forms.
 *
 *   npx tsx bench/translate-incremental.ts [--clusters 100] [--endpoints 20] [--grpc]
 */
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import YAML from 'yaml';
import { parseConfig } from '../src/sources/config-file.js';
import { translate, Translator } from '../src/xds/translator.js';
import { helpIfAsked } from './help.js';

helpIfAsked(import.meta.url);
const { values } = parseArgs({ options: { clusters: { type: 'string', default: '100' }, endpoints: { type: 'string', default: '20' }, grpc: { type: 'boolean', default: false } } });
const forms = { grpc: values.grpc };
const nc = Number(values.clusters);
const ne = Number(values.endpoints);
const clusters = Array.from({ length: nc }, (_, c) => ({
  name: `c${c}`,
  endpoints: Array.from({ length: ne }, (_, i) => ({ address: `10.${c >> 8}.${c & 255}.${i}`, port: 8080, weight: 1 + i })),
}));
const listeners = [{ name: 'ingress', address: '127.0.0.1', port: 10000, routes: [{ prefix: '/', cluster: 'c0' }] }];
const catalog = parseConfig(YAML.stringify({ clusters, listeners }), 'bench').catalog;

function median(f: (i: number) => void): number {
  const times = Array.from({ length: 15 }, (_, i) => {
    const t = performance.now();
    f(i);
    return performance.now() - t;
  });
  return times.sort((a, b) => a - b)[7] ?? Number.NaN;
}

/** Run i: the weight of one endpoint of one cluster changes. */
const weights = (i: number) => new Map([[`c${i % nc}`, new Map([[`10.0.${i % nc}.0:8080`, { weight: 100 + i }]])]]);
const translator = new Translator();
translator.translate(catalog, weights(0), undefined, forms);
const full = median((i) => translate(catalog, weights(i + 1), undefined, forms));
const incremental = median((i) => translator.translate(catalog, weights(i + 1), undefined, forms));
console.log(`${nc} clusters x ${ne} endpoints${values.grpc ? ', gRPC\'s form on' : ''}, one endpoint weight changed per run; load ${loadavg()[0]?.toFixed(1)}`);
console.log(`  translate everything:     ${full.toFixed(2)} ms`);
console.log(`  memoizing Translator:     ${incremental.toFixed(2)} ms   (${(full / incremental).toFixed(1)}x)`);
/** Run i: one endpoint's weight in every cluster. */
const everyCluster = (i: number) => new Map(Array.from({ length: nc }, (_, c) => [`c${c}`, new Map([[`10.${c >> 8}.${c & 255}.${i % ne}:8080`, { weight: 1000 + i }]])]));
const tick = median((i) => translator.translate(catalog, everyCluster(i + 1), undefined, forms));
console.log(`  every cluster's weights:  ${tick.toFixed(2)} ms   (${(tick / nc * 1000).toFixed(1)} µs per cluster)`);
