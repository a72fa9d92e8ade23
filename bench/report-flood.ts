/**
 * One signal client sending as fast as it can: what it costs everyone else. A fulcrum process
 * (compiled dist/, its own process) serves `--clusters` PID clusters of 20 endpoints; a flooding
 * child process sends reports back to back on `--connections` connections (HTTP `POST /v1/reports`,
 * gRPC ReportService, or LRS streams), each `--batch` samples (LRS: endpoint entries). Meanwhile
 * this process measures, before and during the flood: one endpoint weight change through the API
 * until a connected ADS stream receives it (push), a new ADS stream's first CDS answer (sync), a
 * well-behaved reporter's one-sample POST (report), and the flooder's accepted and refused
 * requests. Figures, not pass/fail.
 *
 *   FULCRUM_TEST_DIST=1 npx tsx bench/report-flood.ts [--mode http|grpc|lrs] [--connections 4]
 *     [--batch 10000] [--clusters 50] [--rounds 20] [--config-extra 'yaml under server:'] [--cwd other-checkout]
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { encodeReportRequest, REPORT_METHOD_PATH } from '../src/signals/report-grpc.js';
import { encodeLoadStatsRequest, LRS_METHOD_PATH } from '../src/signals/lrs-codec.js';
import { startFulcrumProcess } from '../test/support/fulcrum-process.js';
import { CDS, EDS, XdsClient } from '../test/support/xds-client.js';
import { helpIfAsked } from './help.js';

helpIfAsked(import.meta.url);
const { values: args } = parseArgs({
  options: {
    mode: { type: 'string', default: 'http' },
    connections: { type: 'string', default: '4' },
    batch: { type: 'string', default: '10000' },
    clusters: { type: 'string', default: '50' },
    rounds: { type: 'string', default: '20' },
    role: { type: 'string', default: 'main' },
    port: { type: 'string' },
    'config-extra': { type: 'string', default: '' },
    /** Another checkout (built) whose fulcrum to measure, e.g. a worktree of main. */
    cwd: { type: 'string' },
  },
});
const clusterCount = Number(args.clusters);
const batchSize = Number(args.batch);
const address = (c: number, e: number): string => `10.${c >> 8}.${c & 255}.${e + 1}`;

function samples(n: number): { cluster: string; endpoint: string; time: number; cpu: number }[] {
  const now = Date.now();
  return Array.from({ length: n }, (_, i) => ({ cluster: `c${i % clusterCount}`, endpoint: `${address(i % clusterCount, Math.floor(i / clusterCount) % 20)}:80`, time: now, cpu: 0.5 }));
}

function lrsReport(n: number): Buffer {
  const perCluster = Math.ceil(n / clusterCount / 20);
  return encodeLoadStatsRequest({
    node: { id: 'flood' },
    cluster_stats: Array.from({ length: clusterCount }, (_, c) => ({
      cluster_name: `c${c}`,
      load_report_interval: { seconds: 2 },
      upstream_locality_stats: [
        {
          locality: {},
          upstream_endpoint_stats: Array.from({ length: 20 * perCluster }, (_, e) => ({
            address: { socket_address: { address: address(c, e % 20), port_value: 80 } },
            total_successful_requests: 10,
            total_issued_requests: 10,
          })),
        },
      ],
    })),
  } as never);
}

/** The flooding child: sends back to back on every connection until killed; prints counts each second. */
async function flood(): Promise<void> {
  const port = Number(args.port);
  const counts = { ok: 0, refused: 0 };
  setInterval(() => process.stdout.write(`${JSON.stringify(counts)}\n`), 1000);
  const connections = Number(args.connections);
  if (args.mode === 'http') {
    const body = Buffer.from(JSON.stringify({ reporter: 'flood', samples: samples(batchSize) }));
    const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
    const one = (): void => {
      const req = http.request({ port, host: '127.0.0.1', path: '/v1/reports', method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': body.length } }, (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode === 200) counts.ok++;
          else counts.refused++;
          // A refused client honours Retry-After, as a well-written agent would not necessarily do.
          one();
        });
      });
      req.on('error', () => setTimeout(one, 10));
      req.end(body);
    };
    for (let i = 0; i < connections; i++) one();
    return;
  }
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), { 'grpc.max_send_message_length': 64 << 20 });
  if (args.mode === 'grpc') {
    const req = encodeReportRequest({ reporter: 'flood', samples: samples(batchSize).map((s) => ({ cluster: s.cluster, endpoint: s.endpoint, time: { seconds: Math.floor(s.time / 1000) }, cpu: s.cpu })) });
    const one = (): void => {
      client.makeUnaryRequest(REPORT_METHOD_PATH, (b: Buffer) => b, (b: Buffer) => b, req, (err) => {
        if (err) counts.refused++;
        else counts.ok++;
        one();
      });
    };
    for (let i = 0; i < connections; i++) one();
    return;
  }
  const report = lrsReport(batchSize);
  for (let i = 0; i < connections; i++) {
    const call = client.makeBidiStreamRequest(LRS_METHOD_PATH, (b: Buffer) => b, (b: Buffer) => b);
    call.on('error', () => counts.refused++);
    call.on('data', () => undefined);
    const pump = (): void => {
      while (call.write(report)) counts.ok++;
      call.once('drain', pump);
    };
    pump();
  }
}

const quantile = (xs: number[], q: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * q))] ?? Number.NaN;

async function measure(admin: number, xds: number, rounds: number): Promise<Record<string, string>> {
  const put = await fetch(`http://127.0.0.1:${admin}/v1/clusters/api`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'api', endpoints: [{ address: '10.9.9.9', port: 80 }] }) });
  if (!put.ok) throw new Error(`PUT ${put.status} ${await put.text()}`);
  const client = XdsClient.forPort(xds);
  const ads = client.sotw();
  ads.request(EDS, ['api'], { node: { id: 'watcher', cluster: 'bench' } });
  ads.ack(await ads.nextOf(EDS, 30_000));
  const push: number[] = [];
  const sync: number[] = [];
  const report: number[] = [];
  for (let i = 0; i < rounds; i++) {
    let started = performance.now();
    const res = await fetch(`http://127.0.0.1:${admin}/v1/clusters/api/endpoints/10.9.9.9/80`, { method: 'PATCH', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ weight: 2 + (i % 50) }) });
    if (!res.ok) throw new Error(`PATCH ${res.status} ${await res.text()}`);
    ads.ack(await ads.nextOf(EDS, 60_000));
    push.push(performance.now() - started);
    started = performance.now();
    const fresh = client.sotw();
    fresh.request(CDS, [], { node: { id: `new-${i}`, cluster: 'bench' } });
    await fresh.nextOf(CDS, 60_000);
    sync.push(performance.now() - started);
    fresh.cancel();
    started = performance.now();
    const r = await fetch(`http://127.0.0.1:${admin}/v1/reports`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ reporter: 'good', samples: [{ cluster: 'c1', endpoint: `${address(1, 0)}:80`, time: Date.now(), cpu: 0.3 }] }) });
    const answer = (await r.json()) as { accepted?: number };
    if (r.status !== 200 || answer.accepted !== 1) throw new Error(`good reporter: ${r.status} ${JSON.stringify(answer)}`);
    report.push(performance.now() - started);
  }
  ads.cancel();
  client.grpc.close();
  const row = (xs: number[]): string => `p50 ${quantile(xs, 0.5).toFixed(1)} p99 ${quantile(xs, 0.99).toFixed(1)} max ${Math.max(...xs).toFixed(1)}`;
  return { push: row(push), sync: row(sync), goodReport: row(report) };
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'fulcrum-flood-'));
  const clusters = Array.from({ length: clusterCount }, (_, c) => `  - name: c${c}\n    weighting: { policy: pid }\n    endpoints: [${Array.from({ length: 20 }, (_, e) => `{ address: ${address(c, e)}, port: 80 }`).join(', ')}]`).join('\n');
  await writeFile(join(dir, 'fulcrum.yaml'), `server:\n  xds:\n    debounceQuietMs: 0\n${args['config-extra']}\nclusters:\n${clusters}\n`);
  const f = await startFulcrumProcess({ config: join(dir, 'fulcrum.yaml'), dataDir: join(dir, 'data'), nodeOptions: ['--max-semi-space-size=4', '--v8-pool-size=1'], ...(args.cwd ? { cwd: args.cwd } : {}) });
  try {
    console.log('quiet', await measure(f.adminPort, f.xdsPort, Number(args.rounds)));
    const port = args.mode === 'http' ? f.adminPort : f.xdsPort;
    const child = spawn(process.execPath, ['--import', 'tsx', 'bench/report-flood.ts', '--role', 'flood', '--port', String(port), '--mode', String(args.mode), '--connections', String(args.connections), '--batch', String(args.batch), '--clusters', String(args.clusters)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let last = '';
    child.stdout.on('data', (d: Buffer) => (last = d.toString().trim().split('\n').pop() ?? last));
    await new Promise((r) => setTimeout(r, 3000));
    const rssBefore = f.rss();
    const during = await measure(f.adminPort, f.xdsPort, Number(args.rounds));
    console.log(`flood ${args.mode} x${args.connections} batch ${batchSize}`, during, 'flooder', last, `rss ${(rssBefore / 2 ** 20).toFixed(0)} -> ${(f.rss() / 2 ** 20).toFixed(0)} MiB`);
    child.kill();
  } finally {
    await f.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

if (args.role === 'flood') await flood();
else await main();
