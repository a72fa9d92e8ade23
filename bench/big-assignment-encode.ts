/**
 * One big ClusterLoadAssignment (issue 13), side by side in one process: protobufjs (building
 * loadAssignmentResource's object, then encoding it in one go: what the translator did before
 * assignment-encoding.ts), and the direct encoder: the layout (grouping and weight fitting), the
 * encode in one go, and the longest piece of the sliced encode the publisher uses for big clusters
 * (assignmentResourceSliced), i.e. how long the event loop is held at most by the encode. Medians
 * over --runs.
 *
 *   npx tsx bench/big-assignment-encode.ts [--endpoints 20000] [--runs 9]
 */
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import type { Cluster } from '../src/catalog/types.js';
import { assignmentResourceSliced, encodeAssignment } from '../src/xds/assignment-encoding.js';
import { encodeMessage } from '../src/xds/envoy-api.js';
import { assignmentLayout, loadAssignmentResource } from '../src/xds/translate-clusters.js';
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
const layoutMs: number[] = [];
const direct: number[] = [];
const longest: number[] = [];
for (let r = 0; r < Number(values.runs); r++) {
  let t = performance.now();
  const value = loadAssignmentResource(cluster);
  build.push(performance.now() - t);
  t = performance.now();
  const viaProtobufjs = Buffer.from(encodeMessage('envoy.config.endpoint.v3.ClusterLoadAssignment', value));
  whole.push(performance.now() - t);
  t = performance.now();
  const layout = assignmentLayout(cluster);
  layoutMs.push(performance.now() - t);
  t = performance.now();
  const bytes = encodeAssignment(layout);
  direct.push(performance.now() - t);
  let since = performance.now();
  let max = 0;
  const sliced = await assignmentResourceSliced('big', layout, async () => {
    max = Math.max(max, performance.now() - since);
    await new Promise((resolve) => setImmediate(resolve));
    since = performance.now();
  });
  longest.push(Math.max(max, performance.now() - since));
  if (!bytes.equals(viaProtobufjs) || !Buffer.from(sliced.bytes).equals(bytes)) throw new Error('the encoders disagree');
}
const median = (a: readonly number[]): string => ([...a].sort((x, y) => x - y)[Math.floor(a.length / 2)] ?? Number.NaN).toFixed(1);
process.stdout.write(
  `${n} endpoints, one locality, load ${loadavg()[0]?.toFixed(1)} (medians of ${values.runs}, ms):\n` +
    `  protobufjs: build ${median(build)}, encode in one go ${median(whole)}\n` +
    `  direct:     layout ${median(layoutMs)}, encode in one go ${median(direct)}, longest sliced piece ${median(longest)}\n`,
);
