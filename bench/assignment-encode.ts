/**
 * One ClusterLoadAssignment encoded the two ways, side by side in one process (issue 13): through
 * protobufjs (loadAssignmentResource's object, then fromObject and encode: what the translator did
 * before assignment-encoding.ts) and directly (assignmentLayout, then encodeAssignment: what it
 * does now). Prints, per assignment size, the median µs per assignment over --runs rounds (the
 * two ways alternate within a round), the ratio, and the bytes each allocates per assignment: the
 * median growth of the heap over single encodes (a single encode rarely meets a scavenge; one that
 * does shrinks the heap and is left out).
 *
 *   npx tsx bench/assignment-encode.ts [--sizes 20,100,1000] [--runs 15] [--rounds 200]
 *
 * Endpoints are spread over three zones of one region, weights 1–7, one in 11 draining, and a
 * quarter of them carry a weight override (the weight loop's output), as in a busy cluster.
 */
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import type { Cluster, Endpoint } from '../src/catalog/types.js';
import type { EndpointOverride } from '../src/catalog/weight-overrides.js';
import { encodeAssignment } from '../src/xds/assignment-encoding.js';
import { encodeMessage } from '../src/xds/envoy-api.js';
import { assignmentLayout, loadAssignmentResource } from '../src/xds/translate-clusters.js';
import { helpIfAsked } from './help.js';

helpIfAsked(import.meta.url);
const { values } = parseArgs({
  options: { sizes: { type: 'string', default: '20,100,1000' }, runs: { type: 'string', default: '15' }, rounds: { type: 'string', default: '200' } },
});
const RUNS = Number(values.runs);
const ROUNDS = Number(values.rounds);
const ASSIGNMENT = 'envoy.config.endpoint.v3.ClusterLoadAssignment';
const address = (i: number): string => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;

function clusterOf(n: number): { c: Cluster; overrides: Map<string, EndpointOverride> } {
  const endpoints: Endpoint[] = Array.from({ length: n }, (_, i) => ({
    address: address(i),
    port: 8080,
    weight: 1 + (i % 7),
    priority: 0,
    health: i % 11 === 0 ? 'DRAINING' : 'HEALTHY',
    locality: { region: 'r1', zone: `z${i % 3}`, subZone: '' },
  }));
  const overrides = new Map<string, EndpointOverride>(endpoints.filter((_, i) => i % 4 === 0).map((e, i) => [`${e.address}:${e.port}`, { weight: 10 + i }]));
  return { c: { name: `c-${n}`, lbPolicy: 'ROUND_ROBIN', connectTimeoutMs: 1000, http2: false, weighting: { kind: 'static' }, endpoints }, overrides };
}

const ways = {
  protobufjs: (c: Cluster, o: Map<string, EndpointOverride>) => encodeMessage(ASSIGNMENT, loadAssignmentResource(c, o)),
  direct: (c: Cluster, o: Map<string, EndpointOverride>) => encodeAssignment(assignmentLayout(c, o)),
};
type Way = keyof typeof ways;

/** µs per assignment over one round of `rounds` encodes. */
function round(way: Way, c: Cluster, o: Map<string, EndpointOverride>, rounds: number): number {
  const t = performance.now();
  for (let i = 0; i < rounds; i++) ways[way](c, o);
  return ((performance.now() - t) * 1000) / rounds;
}

/** Heap growth over one encode (the output buffer counted once, outside the heap), NaN when a GC shrank it meanwhile. */
function allocatedBy(way: Way, c: Cluster, o: Map<string, EndpointOverride>): number {
  const before = process.memoryUsage().heapUsed;
  ways[way](c, o);
  const grew = process.memoryUsage().heapUsed - before;
  return grew > 0 ? grew : Number.NaN;
}

const median = (xs: number[]): number => {
  const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  return s.length === 0 ? Number.NaN : (s[Math.floor((s.length - 1) / 2)] as number);
};

const load = loadavg()[0]?.toFixed(2);
process.stdout.write(`load average ${load} at start; ${RUNS} runs of ${ROUNDS} encodes per way, alternating\n\n`);
process.stdout.write('| endpoints | protobufjs µs | direct µs | ratio | protobufjs KB alloc | direct KB alloc | same bytes |\n|---|---|---|---|---|---|---|\n');
for (const n of values.sizes.split(',').map(Number)) {
  const { c, overrides } = clusterOf(n);
  const same = Buffer.from(ways.protobufjs(c, overrides)).equals(ways.direct(c, overrides));
  const rounds = Math.max(5, Math.round((ROUNDS * 100) / n));
  for (const way of ['protobufjs', 'direct'] as const) round(way, c, overrides, rounds); // warm both
  const us: Record<Way, number[]> = { protobufjs: [], direct: [] };
  const bytes: Record<Way, number[]> = { protobufjs: [], direct: [] };
  for (let r = 0; r < RUNS; r++) {
    for (const way of (r % 2 === 0 ? ['protobufjs', 'direct'] : ['direct', 'protobufjs']) as Way[]) {
      us[way].push(round(way, c, overrides, rounds));
      bytes[way].push(allocatedBy(way, c, overrides));
    }
  }
  const [p, d] = [median(us.protobufjs), median(us.direct)];
  const kb = (w: Way) => (median(bytes[w]) / 1024).toFixed(1);
  process.stdout.write(`| ${n} | ${p.toFixed(1)} | ${d.toFixed(1)} | ${(d / p).toFixed(2)} | ${kb('protobufjs')} | ${kb('direct')} | ${same} |\n`);
}
process.stdout.write(`\nload average ${loadavg()[0]?.toFixed(2)} at the end\n`);
