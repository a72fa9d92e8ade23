/**
 * What one replica's shared proxy status writes to etcd while its Envoys are pushed a change every
 * second (adaptive weights moving): a real etcd, a proxy registry of `--streams` streams (four
 * types each, every push sent and ACKed), the replica's FleetProxies as main.ts wires it, for
 * `--seconds`; puts and bytes on its key, side by side:
 * - `refresh 1 s, no byte bound`: how every release before 2026-12-05 shared (every change, at
 *   most once a second, every listed stream whatever the size);
 * - `refresh 10 s, 1 MiB` (this release's defaults).
 * Not a test.
 *
 *   npx tsx bench/ha-proxy-status.ts [--streams 1000] [--seconds 60]
 */
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { Etcd3 } from 'etcd3';
import { pino } from 'pino';
import { sharedProxyViews } from '../src/admin/views.js';
import { TYPE } from '../src/xds/envoy-api.js';
import { FleetProxies } from '../src/xds/fleet-proxies.js';
import { ProxyRegistry } from '../src/xds/proxy-status.js';
import { startEtcdCluster } from '../test/support/etcd-cluster.js';
import { helpIfAsked, intOption } from './help.js';
import { runMain } from './run-main.js';

helpIfAsked(import.meta.url);
const { values } = parseArgs({ options: { streams: { type: 'string', default: '1000' }, seconds: { type: 'string', default: '60' } } });
const STREAMS = intOption('streams', values.streams);
const SECONDS = intOption('seconds', values.seconds);
const TYPES = [TYPE.cluster, TYPE.endpoint, TYPE.listener, TYPE.route];

interface Row {
  readonly label: string;
  readonly puts: number;
  readonly bytes: number;
  readonly failed: number;
}

async function run(client: Etcd3, label: string, refreshMs: number, maxBytes: number): Promise<Row> {
  const prefix = `/bench-${label.replace(/\W+/g, '-')}/`;
  const registry = new ProxyRegistry();
  const names = new Map(Array.from({ length: 100 }, (_, i) => [`cluster-${i}`, 'v1']));
  const records = Array.from({ length: STREAMS }, (_, s) =>
    registry.connect(s, { id: `sidecar~10.1.${s >> 8}.${s & 255}~app-${s}.default~default.svc.cluster.local`, cluster: 'default', metadata: {}, userAgent: 'envoy/1.40.0' }, 'sotw', 'ADS', `ipv4:10.1.${s >> 8}.${s & 255}:40000`),
  );
  let version = 0;
  const push = (): void => {
    version++;
    for (const r of records) {
      for (const t of TYPES) {
        registry.sent(r, t, `v${version}`, `n${version}`, names, 'state');
        registry.acked(r, t, `n${version}`, `v${version}`);
      }
    }
  };
  push();
  let failed = 0;
  const log = pino({ level: 'warn' }, { write: () => void failed++ });
  const fleet = new FleetProxies({ client, prefix, replica: 'r1', local: (max) => sharedProxyViews(registry.list(), 'r1', max), version: () => registry.version, log, refreshMs, maxBytes });
  let puts = 0;
  let bytes = 0;
  const watcher = await client.watch().key(`${prefix}ha/proxies/r1`).create();
  watcher.on('put', (kv) => {
    puts++;
    bytes += kv.value.length;
  });
  fleet.start();
  const timer = setInterval(push, 1_000);
  await new Promise((resolve) => setTimeout(resolve, SECONDS * 1_000));
  clearInterval(timer);
  await fleet.stop();
  await watcher.cancel();
  return { label, puts, bytes, failed };
}

async function main(): Promise<void> {
  const etcd = await startEtcdCluster(1);
  const client = new Etcd3({ hosts: [...etcd.endpoints] });
  try {
    const rows = [await run(client, 'refresh 1 s, no byte bound', 1_000, Number.POSITIVE_INFINITY), await run(client, 'refresh 10 s, 1 MiB', 10_000, 1024 * 1024)];
    console.log(`one replica, ${STREAMS} streams pushed every second, ${SECONDS} s, load ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
    console.log('| sharing | puts | KiB written | KiB/s | writes refused by etcd |');
    console.log('|---|---|---|---|---|');
    for (const r of rows) console.log(`| ${r.label} | ${r.puts} | ${(r.bytes / 1024).toFixed(0)} | ${(r.bytes / 1024 / SECONDS).toFixed(1)} | ${r.failed > 0 ? 'yes' : 'none'} |`);
  } finally {
    client.close();
    await etcd.stop();
  }
}

runMain(main);
