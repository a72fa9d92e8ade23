/**
 * A weight publication over a busy fleet (issue 13): every cluster's weights change at once, as a
 * weight-loop tick does when every endpoint reports. Prints, per publication of C clusters × E
 * endpoints, the time from setWeights until the snapshot is in the cache, and the longest time
 * the event loop was held meanwhile (what every other request and xDS stream waited behind).
 * Medians over --runs publications.
 *
 * `--repo DIR` loads the Publisher, cache and translator of another checkout (its src/), so two
 * trees can be run alternately in separate processes and compared.
 *
 *   npx tsx bench/weight-publication.ts [--clusters 1000] [--endpoints 100] [--runs 9] [--repo DIR]
 */
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import pino from 'pino';
import type { Catalog, Cluster } from '../src/catalog/types.js';
import type { WeightOverrides } from '../src/catalog/weight-overrides.js';
import type { XdsCache as Cache } from '../src/xds/cache.js';
import type { Publisher as Pub } from '../src/xds/publisher.js';
import { helpIfAsked } from './help.js';

helpIfAsked(import.meta.url);
const { values } = parseArgs({
  options: {
    clusters: { type: 'string', default: '1000' },
    endpoints: { type: 'string', default: '100' },
    runs: { type: 'string', default: '9' },
    repo: { type: 'string', default: resolve(import.meta.dirname, '..') },
  },
});
const nc = Number(values.clusters);
const ne = Number(values.endpoints);
const from = (file: string) => import(pathToFileURL(join(values.repo, 'src', file)).href);
const { XdsCache } = (await from('xds/cache.ts')) as { XdsCache: new () => Cache };
const { Publisher } = (await from('xds/publisher.ts')) as { Publisher: new (...args: unknown[]) => Pub };

const address = (c: number, i: number): string => `10.${c >> 8}.${c & 255}.${i}`;
const clusters: Cluster[] = Array.from({ length: nc }, (_, c) => ({
  name: `c${c}`,
  lbPolicy: 'ROUND_ROBIN',
  connectTimeoutMs: 1000,
  http2: false,
  weighting: { kind: 'static' },
  endpoints: Array.from({ length: ne }, (_, i) => ({
    address: address(c, i),
    port: 8080,
    weight: 1 + (i % 7),
    priority: 0,
    health: 'HEALTHY',
    locality: { region: 'r1', zone: `z${i % 3}`, subZone: '' },
  })),
}));
const catalog: Catalog = { clusters, listeners: [], nodeGroups: [] };

/** Publication r: every endpoint of every cluster gets a new weight. */
const tick = (r: number): WeightOverrides =>
  new Map(clusters.map((c, ci) => [c.name, new Map(c.endpoints.map((e, i) => [`${e.address}:${e.port}`, { weight: 1 + ((r + ci + i) % 50) }]))]));

let published: (() => void) | undefined;
const publisher = new Publisher(new XdsCache(), pino({ level: 'silent' }), { quietMs: 0, maxMs: 0 }, () => published?.());
publisher.setCatalog(catalog);
publisher.start();

/** Runs publication r; resolves with [ms until published, longest hold of the event loop in ms]. */
async function publish(r: number): Promise<[number, number]> {
  const weights = tick(r);
  let longest = 0;
  let last = performance.now();
  let probing = true;
  const probe = () => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
    if (probing) setImmediate(probe);
  };
  setImmediate(probe);
  await new Promise<void>((done) => setImmediate(done)); // the probe is running
  const started = performance.now();
  last = started;
  await new Promise<void>((done) => {
    published = done;
    publisher.setWeights(weights);
  });
  const ms = performance.now() - started;
  longest = Math.max(longest, performance.now() - last);
  probing = false;
  return [ms, longest];
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)] ?? Number.NaN;
await publish(0); // warm
const total: number[] = [];
const held: number[] = [];
for (let r = 1; r <= Number(values.runs); r++) {
  const [ms, longest] = await publish(r);
  total.push(ms);
  held.push(longest);
}
publisher.stop();
console.log(`${values.repo}: ${nc} clusters × ${ne} endpoints, every weight changed; load ${loadavg()[0]?.toFixed(2)}`);
console.log(`  until published: median ${median(total).toFixed(1)} ms (${total.map((x) => x.toFixed(0)).join(', ')})`);
console.log(`  longest hold:    median ${median(held).toFixed(1)} ms (${held.map((x) => x.toFixed(0)).join(', ')})`);
