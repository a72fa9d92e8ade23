/**
 * Reconnect storm (issue 13): N proxies connect within a couple of seconds, as when a control
 * plane restarts. Counts connections refused or reset and the time until every one has its
 * first CDS response. fulcrum runs as its own process (tsx, shipped heap cap); the proxies are
 * raw HTTP/2 clients spread over 20 loopback source addresses (distinct peers, as a fleet is).
 *
 *   npx tsx bench/reconnect-storm.ts [--connections 10000] [--within-ms 2000] [--backlog 4096]
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startFulcrumProcess } from '../test/support/fulcrum-process.js';
import { connectH2, discoveryRequest, firstData, grpcFrame, openCall } from '../test/support/raw-grpc.js';

const { values } = parseArgs({
  options: {
    connections: { type: 'string', default: '10000' },
    'within-ms': { type: 'string', default: '2000' },
    backlog: { type: 'string', default: '4096' },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  process.stdout.write('usage: npx tsx bench/reconnect-storm.ts [--connections N] [--within-ms MS] [--backlog N]\n');
  process.exit(0);
}
const total = Number(values.connections);
const withinMs = Number(values['within-ms']);
const SOURCES = Array.from({ length: 20 }, (_, i) => `127.0.1.${i + 1}`);

type Outcome = 'synced' | 'refused' | 'reset' | 'other';

async function proxy(port: number, i: number, t0: number): Promise<{ outcome: Outcome; ms: number; detail?: string }> {
  try {
    const session = await connectH2(port, SOURCES[i % SOURCES.length]);
    const stream = openCall(session);
    stream.write(grpcFrame(discoveryRequest(`storm-${i}`)));
    const data = await firstData(stream);
    const ms = performance.now() - t0;
    return data ? { outcome: 'synced', ms } : { outcome: 'other', ms, detail: `stream closed (rst ${stream.rstCode ?? 0})` };
  } catch (err) {
    const code = (err as { code?: string }).code ?? String(err);
    const outcome: Outcome = code === 'ECONNREFUSED' ? 'refused' : code === 'ECONNRESET' ? 'reset' : 'other';
    return { outcome, ms: performance.now() - t0, detail: code };
  }
}

/** The server's own count of what it refused (limits and non-gRPC connections), non-zero series only. */
async function refusals(adminPort: number): Promise<Record<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^fulcrum_xds_(?:limit_exceeded|connections_refused)_total\{\w+="([^"]+)"\} (\d+)$/gm)) {
    if (m[1] && Number(m[2]) > 0) out[m[1]] = Number(m[2]);
  }
  return out;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-storm-'));
  const config = join(dir, 'fulcrum.yaml');
  const clusters = Array.from({ length: 100 }, (_, c) => `  - name: c${c}\n    endpoints: [{ address: 10.0.${c}.1, port: 8080 }, { address: 10.0.${c}.2, port: 8080 }]`).join('\n');
  // The default limits fit the shipped 512 MiB pod (5,000 streams); a storm this size needs more.
  // The handshake deadline is lifted too: this one client process, on the server's two cores,
  // writes some prefaces more than 30 s late; real proxies are separate machines.
  const limits = `    limits: { maxConnections: ${total + 1000}, maxStreams: ${total + 1000}, handshakeTimeoutMs: 120000 }`;
  // Keepalive pings off the path: a client process juggling 10,000 sessions answers them late.
  writeFileSync(config, `server:\n  xds:\n    listenBacklog: ${values.backlog}\n    keepaliveTimeMs: 600000\n${limits}\nclusters:\n${clusters}\n`);
  const fulcrum = await startFulcrumProcess({ config, dataDir: join(dir, 'data'), nodeOptions: ['--max-old-space-size=384', ...(process.env.STORM_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.STORM_PROF] : [])] });
  const t0 = performance.now();
  const runs: Promise<{ outcome: Outcome; ms: number; detail?: string }>[] = [];
  // Paced: proxy i starts at i * withinMs / total.
  for (let i = 0; i < total; i++) {
    const due = (i * withinMs) / total;
    const wait = due - (performance.now() - t0);
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    runs.push(proxy(fulcrum.xdsPort, i, t0));
  }
  const startedMs = performance.now() - t0;
  const results = await Promise.all(runs);
  const count = (o: Outcome): number => results.filter((r) => r.outcome === o).length;
  const synced = results.filter((r) => r.outcome === 'synced').map((r) => r.ms).sort((a, b) => a - b);
  const details = new Map<string, number>();
  for (const r of results) if (r.detail) details.set(r.detail, (details.get(r.detail) ?? 0) + 1);
  const pct = (p: number): string => (synced.length ? `${Math.round(synced[Math.min(synced.length - 1, Math.floor((p / 100) * synced.length))] ?? 0)} ms` : '-');
  console.log(
    JSON.stringify({
      connections: total,
      backlog: Number(values.backlog),
      startedWithinMs: Math.round(startedMs),
      synced: count('synced'),
      refused: count('refused'),
      reset: count('reset'),
      other: count('other'),
      details: Object.fromEntries(details),
      syncedP50: pct(50),
      syncedP99: pct(99),
      allSyncedMs: synced.length === total ? Math.round(synced[synced.length - 1] ?? 0) : undefined,
      rssMiB: Math.round(fulcrum.rss() / 1048576),
      serverRefusals: await refusals(fulcrum.adminPort),
    }),
  );
  await fulcrum.stop();
  rmSync(dir, { recursive: true, force: true });
  process.exit(0);
}

await main();
