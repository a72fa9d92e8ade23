/**
 * Report ingestion rate: samples per second through validation into the SignalStore, in one
 * process on one core — directly (the function both transports call) and over real HTTP
 * (POST /v1/reports: JSON parse, schema, validation, store). Target: 100,000 samples/s.
 *
 *   npx tsx bench/ingest.ts [--endpoints 1000] [--batch 5000] [--seconds 3]
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import YAML from 'yaml';
import { startFulcrum } from '../src/main.js';
import { helpIfAsked } from './help.js';

helpIfAsked(import.meta.url);
const { values } = parseArgs({
  options: { endpoints: { type: 'string', default: '1000' }, batch: { type: 'string', default: '5000' }, seconds: { type: 'string', default: '3' } },
});
const endpoints = Number(values.endpoints);
const batchSize = Number(values.batch);
const seconds = Number(values.seconds);

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

const dir = await mkdtemp(join(tmpdir(), 'fulcrum-bench-ingest-'));
const configPath = join(dir, 'fulcrum.yaml');
const clusters = Array.from({ length: Math.ceil(endpoints / 20) }, (_, c) => ({
  name: `c${c}`,
  weighting: { policy: 'pid' },
  endpoints: Array.from({ length: 20 }, (_, e) => ({ address: `10.${c >> 8}.${c & 255}.${e + 1}`, port: 8080 })),
}));
// One sender at full speed is what this measures: its budget (server.xds.limits) set out of reach.
const limits = { reportSamplesPerSecondPerPeer: 100_000_000, reportBurstSamplesPerPeer: 1_000_000_000 };
await writeFile(configPath, YAML.stringify({ server: { xds: { limits } }, clusters }));
const fulcrum = await startFulcrum({ configPath, xdsPort: 0, xdsAddress: '127.0.0.1', adminPort: 0, logger: pino({ level: 'silent' }), auth: { adminTokens: [], readTokens: [] } });

function batch(): { reporter: string; samples: unknown[] } {
  const now = Date.now();
  const samples = Array.from({ length: batchSize }, (_, i) => {
    const c = clusters[i % clusters.length];
    const e = c?.endpoints[(i / clusters.length) % 20 | 0];
    return { cluster: c?.name, endpoint: `${e?.address}:8080`, time: now - 1000, cpu: Math.random(), latencyMs: 5 + Math.random() * 10, rps: 100 };
  });
  return { reporter: 'bench', samples };
}

async function measure(name: string, run: (body: { reporter: string; samples: unknown[] }) => Promise<number> | number): Promise<number> {
  const rates: number[] = [];
  for (let round = 0; round < 5; round++) {
    const body = batch();
    let samples = 0;
    const started = performance.now();
    let tick = 0;
    while (performance.now() - started < (seconds * 1000) / 5) {
      // Each sample must be newer than the last one kept for its endpoint.
      const t = Date.now() + ++tick;
      for (const s of body.samples as { time: number }[]) s.time = t;
      samples += await run(body);
    }
    rates.push(samples / ((performance.now() - started) / 1000));
  }
  const m = median(rates);
  process.stdout.write(`${name.padEnd(34)} ${Math.round(m).toLocaleString('en-US').padStart(12)} samples/s (median of 5)\n`);
  return m;
}

const direct = await measure('in-process (validate + store)', (body) => {
  const r = fulcrum.signals.ingest(body);
  if (r.rejected.length > 0) throw new Error(JSON.stringify(r.rejected[0]));
  return r.accepted;
});
const url = `http://127.0.0.1:${fulcrum.adminPort}/v1/reports`;
const http = await measure('HTTP POST /v1/reports (keep-alive)', async (body) => {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const json = (await res.json()) as { accepted: number };
  if (res.status !== 200) throw new Error(`status ${res.status}: ${JSON.stringify(json)}`);
  return json.accepted;
});

await fulcrum.stop();
await rm(dir, { recursive: true, force: true });
process.stdout.write(`${JSON.stringify({ bench: 'ingest', endpoints, batchSize, inProcessSamplesPerSec: Math.round(direct), httpSamplesPerSec: Math.round(http), target: 100_000 })}\n`);
