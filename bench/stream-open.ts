/**
 * CPU of opening streams through the state machines alone (issue 13's reconnect storm, less the
 * transport): N proxies each open a SotW or Delta ADS stream as the storm client does (CDS
 * wildcard with its node, then EDS naming every cluster) and ACK both responses. Measured is
 * everything the server does with those four requests (decode, handle, respond) on an in-memory
 * cache; the requests are encoded beforehand (every proxy's ACKs are the same bytes) and the
 * responses go to a fake that keeps them. Each figure is a fresh process; with --base the other
 * checkout's modules run the same script, interleaved, for a side-by-side ratio.
 *
 *   npx tsx bench/stream-open.ts [--streams 10000] [--runs 3] [--protocols sotw,delta] [--base DIR]
 */
import { execFileSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    streams: { type: 'string', default: '10000' },
    runs: { type: 'string', default: '3' },
    protocols: { type: 'string', default: 'sotw,delta' },
    clusters: { type: 'string', default: '100' },
    base: { type: 'string' },
    child: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  process.stdout.write('usage: npx tsx bench/stream-open.ts [--streams N] [--runs N] [--protocols sotw,delta] [--clusters N] [--base DIR]\n');
  process.exit(0);
}
const N = Number(args.streams);
const C = Number(args.clusters);

type Mod = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- modules of either checkout, loaded by path

/** One measurement in this process: the modules of checkout `root`, one protocol. */
async function measure(root: string, protocol: string): Promise<number> {
  const load = (p: string): Promise<Mod> => import(pathToFileURL(resolve(root, p)).href) as Promise<Mod>;
  const [{ pino }, { XdsCache }, api, { ProxyRegistry }, { encodeResource }, { DEFAULT_GROUP }, { SotwStream }, { DeltaStream }, wire, client] = await Promise.all([
    import('pino'), load('src/xds/cache.ts'), load('src/xds/envoy-api.ts'), load('src/xds/proxy-status.ts'), load('src/xds/resource.ts'),
    load('src/xds/resource-set.ts'), load('src/xds/sotw-stream.ts'), load('src/xds/delta-stream.ts'), load('src/xds/wire.ts'), load('test/support/xds-client.ts'),
  ]);
  const TYPE = api.TYPE as Record<string, string>;
  const names = Array.from({ length: C }, (_, c) => `svc-${c}`);
  const clusters = new Map(names.map((name) => [name, encodeResource(TYPE.cluster, name, { name, type: 'EDS', eds_cluster_config: { eds_config: { ads: {} } } })]));
  const lb = (c: number) => Array.from({ length: 20 }, (_, e) => ({ endpoint: { address: { socket_address: { address: `10.0.${c % 256}.${e + 1}`, port_value: 8080 } } }, load_balancing_weight: { value: 1 } }));
  const assignments = new Map(names.map((name, c) => [name, encodeResource(TYPE.endpoint, name, { cluster_name: name, endpoints: [{ lb_endpoints: lb(c) }] })]));
  const cache = new XdsCache();
  cache.update(new Map([[DEFAULT_GROUP, new Map([[TYPE.cluster, clusters], [TYPE.endpoint, assignments]])]]));
  const deps = { cache, registry: new ProxyRegistry(), log: pino({ level: 'silent' }), maxResourceNames: 20_000, controlPlaneId: 'bench' };
  const sotw = protocol === 'sotw';
  const msg = api.envoyType(sotw ? 'envoy.service.discovery.v3.DiscoveryRequest' : 'envoy.service.discovery.v3.DeltaDiscoveryRequest');
  const enc = (m: Record<string, unknown>): Buffer => Buffer.from(msg.encode(msg.fromObject(m)).finish());
  const decode = sotw ? wire.decodeDiscoveryRequest : wire.decodeDeltaDiscoveryRequest;
  const node = (i: number) => ({ id: `proxy-${i}`, cluster: 'bench', user_agent_name: 'envoy' });
  const cds = (i: number) => enc(sotw ? { node: node(i), type_url: TYPE.cluster } : { node: node(i), type_url: TYPE.cluster, resource_names_subscribe: ['*'] });
  const eds = enc(sotw ? { type_url: TYPE.endpoint, resource_names: names } : { type_url: TYPE.endpoint, resource_names_subscribe: names });
  class Io {
    readonly peer = 'bench';
    sent: Uint8Array[] = [];
    send(parts: readonly Uint8Array[]): void {
      this.sent.push(parts.length === 1 ? (parts[0] as Uint8Array) : Buffer.concat(parts));
    }
    fail(code: number, message: string): void {
      throw new Error(`stream failed: ${code} ${message}`);
    }
  }
  const open = (i: number, io: Io): Mod => (sotw ? new SotwStream(deps, io, 'ads') : new DeltaStream(deps, io, 'ads-delta'));
  // One probe stream gives the ACKs: nonces count per stream and versions are the content's, so every proxy's are the same bytes.
  const probe = new Io();
  const p = open(-1, probe);
  p.onRequest(decode(cds(-1)));
  p.onRequest(decode(eds));
  const acks = probe.sent.map((b) => {
    const r = sotw ? client.decodeDiscoveryResponse(b) : client.decodeDeltaDiscoveryResponse(b);
    return enc(sotw ? { version_info: r.version_info, resource_names: r.type_url === TYPE.endpoint ? names : [], type_url: r.type_url, response_nonce: r.nonce } : { type_url: r.type_url, response_nonce: r.nonce });
  });
  const firsts = Array.from({ length: N }, (_, i) => cds(i));
  const held: unknown[] = [];
  const cpu = (): number => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  };
  const t0 = cpu();
  for (let i = 0; i < N; i++) {
    const io = new Io();
    const s = open(i, io);
    // Each request as its own buffer, as grpc-js hands them over.
    for (const b of [firsts[i] as Buffer, eds, ...acks]) s.onRequest(decode(Buffer.from(b)));
    if (io.sent.length !== 2) throw new Error(`stream ${i} was sent ${io.sent.length} responses, expected 2`);
    held.push(s);
  }
  return cpu() - t0;
}

if (args.child) {
  const [root, protocol] = args.child.split(',') as [string, string];
  process.stdout.write(`${(await measure(root, protocol)).toFixed(1)}\n`);
} else {
  const roots = [['this tree', process.cwd()], ...(args.base ? [['base', resolve(args.base)]] : [])] as const;
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
  const rows: string[] = [];
  for (const protocol of args.protocols.split(',')) {
    const ms = new Map<string, number[]>(roots.map(([label]) => [label, []]));
    for (let run = 0; run < Number(args.runs); run++) {
      for (const [label, root] of run % 2 === 0 ? roots : [...roots].reverse()) {
        const out = execFileSync(process.execPath, ['--import', 'tsx', resolve(process.cwd(), 'bench/stream-open.ts'), '--streams', String(N), '--clusters', String(C), '--child', `${root},${protocol}`], { cwd: root, encoding: 'utf8' });
        ms.get(label)?.push(Number(out.trim()));
      }
    }
    const mine = median(ms.get('this tree') ?? []);
    const base = args.base ? median(ms.get('base') ?? []) : NaN;
    const perStream = (x: number) => ((x / N) * 1000).toFixed(0);
    rows.push(`| ${protocol} | ${(ms.get('this tree') ?? []).map((x) => x.toFixed(0)).join(', ')} | ${perStream(mine)} | ${args.base ? `${(ms.get('base') ?? []).map((x) => x.toFixed(0)).join(', ')} | ${perStream(base)} | ${(mine / base).toFixed(2)}` : '- | - | -'} |`);
  }
  process.stdout.write(
    [
      `${N} streams opened (CDS wildcard + EDS for ${C} clusters, both ACKed), CPU ms per run; load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`,
      '',
      '| protocol | this tree: runs (ms) | µs per stream (median) | base: runs (ms) | µs per stream (median) | this ÷ base |',
      '|---|---|---|---|---|---|',
      ...rows,
      '',
    ].join('\n'),
  );
}
