/**
 * What a proxy's first xDS request costs to decode. Envoy 1.40 sends its Node once per stream
 * with every extension compiled into it (516, ~61 KB); a reconnect storm of N Envoys decodes N of
 * them. Times, side by side in one process, the server's decode (`decodeDiscoveryRequest` and
 * `nodeInfo`, the node read through its summary type: src/xds/node-summary.ts) against the same
 * decode with the full envoy.config.core.v3.Node type (what every version before did), per request,
 * median of `--rounds` rounds of `--requests` each. Not a test.
 *
 *   npx tsx bench/first-request-decode.ts [--requests 2000] [--rounds 7] [--extensions 516] [--metadata-keys 30]
 */
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { envoyType } from '../src/xds/envoy-api.js';
import { decodeRequestFields } from '../src/xds/request-names.js';
import { decodeDiscoveryRequest, nodeInfo, type RawNode } from '../src/xds/wire.js';
import { helpIfAsked, intOption } from './help.js';

helpIfAsked(import.meta.url);
const { values } = parseArgs({ options: { requests: { type: 'string', default: '2000' }, rounds: { type: 'string', default: '7' }, extensions: { type: 'string', default: '516' }, 'metadata-keys': { type: 'string', default: '30' } } });
const REQUESTS = intOption('requests', values.requests);
const ROUNDS = intOption('rounds', values.rounds);
const EXTENSIONS = intOption('extensions', values.extensions, 0);
const KEYS = intOption('metadata-keys', values['metadata-keys'], 0);

/** A first request as an Envoy 1.40 sidecar sends it: node with extensions and sidecar-like metadata, CDS wildcard. */
function firstRequest(): Buffer {
  const metadata = { fields: Object.fromEntries(Array.from({ length: KEYS }, (_, i) => [`ISTIO_META_KEY_${i}`, { stringValue: `value-${i}-`.padEnd(60, 'x') }])) };
  const node = {
    id: 'sidecar~10.1.2.3~web-7d9f8-abcde.shop~shop.svc.cluster.local',
    cluster: 'web.shop',
    metadata,
    user_agent_name: 'envoy',
    user_agent_build_version: { version: { major_number: 1, minor_number: 40, patch: 0 } },
    extensions: Array.from({ length: EXTENSIONS }, (_, i) => ({
      name: `envoy.filters.http.extension_number_${i}`,
      category: 'envoy.filters.http',
      type_urls: [`type.googleapis.com/envoy.extensions.filters.http.ext${i}.v3.Config`],
    })),
    client_features: ['envoy.lb.does_not_support_overprovisioning', 'envoy.lrs.supports_send_all_clusters'],
  };
  const type = envoyType('envoy.service.discovery.v3.DiscoveryRequest');
  return Buffer.from(type.encode(type.fromObject({ node, type_url: 'type.googleapis.com/envoy.config.cluster.v3.Cluster' })).finish());
}

const buf = firstRequest();
const full = { node: envoyType('envoy.config.core.v3.Node'), status: envoyType('google.rpc.Status') };
const paths: Record<string, () => unknown> = {
  'full Node type': () => decodeRequestFields(buf, full).node,
  'node summary (this tree)': () => nodeInfo(decodeDiscoveryRequest(buf).node as RawNode),
};
const times = new Map<string, number[]>(Object.keys(paths).map((k) => [k, []]));
for (let round = 0; round < ROUNDS + 1; round++) {
  for (const [name, run] of Object.entries(paths)) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < REQUESTS; i++) run();
    const us = Number(process.hrtime.bigint() - t0) / 1000 / REQUESTS;
    if (round > 0) times.get(name)?.push(us); // round 0 warms both up
  }
}
const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
console.log(`first request ${buf.length} bytes (${EXTENSIONS} extensions, ${KEYS} metadata keys); ${ROUNDS} rounds of ${REQUESTS}, load ${loadavg()[0]?.toFixed(1)}`);
const base = median(times.get('full Node type') ?? []);
for (const [name, xs] of times) console.log(`  ${name.padEnd(26)} ${median(xs).toFixed(1).padStart(7)} µs per request (median)  ${(median(xs) / base).toFixed(3)}×`);
