/**
 * One big ClusterLoadAssignment (issue 13): building it, encoding it in one go, and the longest
 * piece of the sliced encode the publisher uses for big clusters (sliced-encode.ts), i.e. how long
 * the event loop is held at most by the encode; then the same with the endpoint objects built as
 * the encoder slices them (the publisher's way since the lazy build: `loadAssignmentResource(c,
 * overrides, true)`), whose build is then only the grouping and weight fitting. Medians over --runs.
 *
 *   npx tsx bench/big-assignment-encode.ts [--endpoints 20000] [--runs 9]
 */
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import type { Cluster } from '../src/catalog/types.js';
import { encodeMessage } from '../src/xds/envoy-api.js';
import { encodeLoadAssignmentSliced } from '../src/xds/sliced-encode.js';
import { loadAssignmentResource } from '../src/xds/translate-clusters.js';
import { helpIfAsked } from './help.js';

helpIfAsked(import.meta.url);
const { values } = parseArgs({ options: { endpoints: { type: 'string', default: '20000' }, runs: { type: 'string', default: '9' } } });
const n = Number(values.endpoints);
const address = (i: number): string => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
const cluster: Cluster = {
  name: 'big',
  lbPolicy: 'ROUND_ROBIN',
  connectTimeoutMs: 1000,
  http2: false,
  weighting: { kind: 'static' },
  endpoints: Array.from({ length: n }, (_, i) => ({ address: address(i), port: 8080, weight: 1 + (i % 5), priority: 0, health: 'HEALTHY', locality: { region: '', zone: '', subZone: '' } })),
};

const build: number[] = [];
const whole: number[] = [];
const longest: number[] = [];
const lazyBuild: number[] = [];
const lazyLongest: number[] = [];
for (let r = 0; r < Number(values.runs); r++) {
  let t = performance.now();
  const value = loadAssignmentResource(cluster);
  build.push(performance.now() - t);
  t = performance.now();
  encodeMessage('envoy.config.endpoint.v3.ClusterLoadAssignment', value);
  whole.push(performance.now() - t);
  let since = performance.now();
  let max = 0;
  await encodeLoadAssignmentSliced(value, async () => {
    max = Math.max(max, performance.now() - since);
    await new Promise((resolve) => setImmediate(resolve));
    since = performance.now();
  });
  longest.push(Math.max(max, performance.now() - since));
  t = performance.now();
  const lazy = loadAssignmentResource(cluster, undefined, true);
  lazyBuild.push(performance.now() - t);
  since = performance.now();
  max = 0;
  await encodeLoadAssignmentSliced(lazy, async () => {
    max = Math.max(max, performance.now() - since);
    await new Promise((resolve) => setImmediate(resolve));
    since = performance.now();
  });
  lazyLongest.push(Math.max(max, performance.now() - since));
}
const median = (a: readonly number[]): string => ([...a].sort((x, y) => x - y)[Math.floor(a.length / 2)] ?? Number.NaN).toFixed(1);
process.stdout.write(
  `${n} endpoints, one locality, load ${loadavg()[0]?.toFixed(1)}: build ${median(build)} ms, encode in one go ${median(whole)} ms, longest sliced piece ${median(longest)} ms; lazy build ${median(lazyBuild)} ms, its longest sliced piece ${median(lazyLongest)} ms (medians of ${values.runs})\n`,
);
