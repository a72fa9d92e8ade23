/**
 * What one open dashboard costs the server at scale: a real headless Chromium (Debian's
 * `chromium`, driven by playwright-core) keeps the dashboard open on a compiled fulcrum serving
 * --clusters × --endpoints, side by side for two builds.
 *
 *   npx tsx bench/dashboard-load.ts [--clusters 1000] [--endpoints 100] [--proxies 0] [--seconds 30] [--settle 60] [--base DIR]
 *
 * Starts `node --max-semi-space-size=4 --v8-pool-size=1 dist/main.js` of this checkout (then of
 * --base; run `npm run build` in each first, and the bench twice with the builds swapped for both
 * orders) on a block-style config, connects --proxies SotW streams (each asks for CDS and ACKs
 * it; 90 per HTTP/2 connection), opens the dashboard (1280 × 900), waits for its first completed
 * poll (printed: how long that took; at most --settle s, a page too busy to answer is measured
 * anyway; the server's CPU seconds and longest probe wait meanwhile), then for --seconds measures: the server's CPU seconds (utime + stime), the requests the
 * page made and the bytes it received, the polls it completed (one a second when it keeps up), the
 * browser's CPU seconds (every process of its profile), and the longest wait of a /healthz probe
 * run every 5 ms from a worker thread (this process's own loop is busy with the browser). Not a test. CHROMIUM_BIN overrides /usr/bin/chromium.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import type { BrowserContext } from 'playwright-core';
import { launchChromium } from '../test/support/chromium.js';
import { ADS, CDS, XdsClient } from '../test/support/xds-client.js';
import { helpIfAsked, intOption } from './help.js';
import { blockConfig, probeHealthzOffThread, startBuild } from './served-build.js';

helpIfAsked(import.meta.url);
const { values } = parseArgs({
  options: {
    clusters: { type: 'string', default: '1000' },
    endpoints: { type: 'string', default: '100' },
    proxies: { type: 'string', default: '0' },
    seconds: { type: 'string', default: '30' },
    settle: { type: 'string', default: '60' },
    base: { type: 'string' },
  },
});
const n = (name: 'clusters' | 'endpoints' | 'seconds' | 'settle'): number => intOption(name, values[name]);
const [CLUSTERS, ENDPOINTS, PROXIES, SECONDS, SETTLE] = [n('clusters'), n('endpoints'), intOption('proxies', values.proxies, 0), n('seconds'), n('settle')];
const TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** utime + stime of one process, seconds (0 once it is gone). */
async function cpuSeconds(pid: number): Promise<number> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS;
  } catch {
    return 0;
  }
}

/** The pids whose command line mentions `marker` (the browser's profile folder). */
async function pidsWith(marker: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cmd = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (cmd.includes(marker)) pids.push(Number(entry));
  }
  return pids;
}

const sumCpu = async (pids: readonly number[]): Promise<number> => (await Promise.all(pids.map(cpuSeconds))).reduce((a, b) => a + b, 0);

/** `count` SotW streams that asked for CDS and ACKed it, 90 per connection (the server takes 100). */
async function connectProxies(xdsPort: number, count: number): Promise<XdsClient[]> {
  const clients = Array.from({ length: Math.ceil(count / 90) }, () => XdsClient.forPort(xdsPort));
  const streams = Array.from({ length: count }, (_, i) => {
    const stream = (clients[Math.floor(i / 90)] as XdsClient).sotw(ADS);
    stream.request(CDS, [], { node: { id: `sidecar-${i}`, cluster: 'default', user_agent_name: 'envoy' } });
    return stream;
  });
  await Promise.all(streams.map(async (s) => s.ack(await s.nextOf(CDS, 120_000))));
  return clients;
}

interface Row {
  serverCpu: number;
  browserCpu: number;
  requests: number;
  bytes: number;
  /** Completed in the window; undefined when the page did not answer. */
  polls: number | undefined;
  longestWaitMs: number;
  /** From opening the page until its first poll completed; undefined: not within --settle. */
  firstPollS: number | undefined;
  /** Server CPU seconds and longest probe wait from opening the page until its first poll (or --settle). */
  openingCpu: number;
  openingWaitMs: number;
  openingRequests: number;
  openingBytes: number;
}

async function series(repo: string): Promise<Row> {
  const dir = await mkdtemp(join(tmpdir(), 'fulcrum-dash-'));
  const configPath = join(dir, 'fulcrum.yaml');
  // All the streams come from this one peer: the per-peer bound (2,000 by default) raised to fit.
  const limits = PROXIES > 1_000 ? `server:\n  xds:\n    limits:\n      maxStreamsPerPeer: ${PROXIES + 100}\n` : '';
  await writeFile(configPath, limits + blockConfig(CLUSTERS, ENDPOINTS));
  const server = await startBuild(repo, configPath, join(dir, 'data'));
  const profile = join(dir, 'chromium-profile');
  let clients: XdsClient[] = [];
  let context: BrowserContext | undefined;
  try {
    clients = await connectProxies(server.xds, PROXIES);
    context = await launchChromium(profile);
    const page = context.pages()[0] ?? (await context.newPage());
    // Every request the page made and the bytes it received, from opening it.
    let requests = 0;
    let bytes = 0;
    page.on('requestfinished', (req) => {
      requests++;
      void req.sizes().then((s) => (bytes += s.responseBodySize), () => undefined);
    });
    const serverPid = server.child.pid ?? 0;
    const openProbe = await probeHealthzOffThread(server.admin);
    const openCpu0 = await cpuSeconds(serverPid);
    await page.goto(`http://127.0.0.1:${server.admin}/`);
    // A page busy drawing thousands of charts may not answer at all: its polls are then unknown.
    const polls = (): Promise<number | undefined> =>
      page.getAttribute('body', 'data-polls', { timeout: 2_000 }).then((v) => Number(v ?? 0), () => undefined);
    const opened = performance.now();
    let firstPollS: number | undefined;
    while (performance.now() - opened < SETTLE * 1000) {
      if (((await polls()) ?? 0) >= 1) {
        firstPollS = (performance.now() - opened) / 1000;
        break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    const openingCpu = (await cpuSeconds(serverPid)) - openCpu0;
    const openingWaitMs = await openProbe.stop();
    const browserPids = await pidsWith(profile);
    const [server0, browser0, polls0] = [await cpuSeconds(serverPid), await sumCpu(browserPids), await polls()];
    const [openingRequests, openingBytes] = [requests, bytes];
    const probe = await probeHealthzOffThread(server.admin);
    await new Promise((r) => setTimeout(r, SECONDS * 1000));
    const longestWaitMs = await probe.stop();
    return {
      serverCpu: (await cpuSeconds(serverPid)) - server0,
      browserCpu: (await sumCpu(browserPids)) - browser0,
      requests: requests - openingRequests,
      bytes: bytes - openingBytes,
      openingRequests,
      openingBytes,
      polls: polls0 === undefined ? undefined : ((await polls()) ?? NaN) - polls0,
      longestWaitMs,
      firstPollS,
      openingCpu,
      openingWaitMs,
    };
  } finally {
    await context?.close();
    for (const c of clients) c.close();
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

const builds = [{ name: 'this', repo: process.cwd() }, ...(values.base ? [{ name: 'base', repo: resolve(values.base) }] : [])];
process.stdout.write(`dashboard open for ${SECONDS} s: ${CLUSTERS} × ${ENDPOINTS} endpoints, ${PROXIES} proxy streams, load ${loadavg()[0]?.toFixed(2)}\n\n`);
process.stdout.write('| build | first poll s | opening: requests, MB | opening: server CPU s | opening: longest probe wait ms | server CPU s/s | browser CPU s/s | requests/s | MB/s received | polls/s | longest probe wait ms |\n|---|---|---|---|---|---|---|---|---|---|---|\n');
for (const b of builds) {
  const r = await series(b.repo);
  const per = (x: number, d = 2): string => (x / SECONDS).toFixed(d);
  process.stdout.write(`| ${b.name} | ${r.firstPollS === undefined ? `> ${SETTLE}` : r.firstPollS.toFixed(1)} | ${r.openingRequests}, ${(r.openingBytes / 1e6).toFixed(1)} | ${r.openingCpu.toFixed(2)} | ${r.openingWaitMs.toFixed(0)} | ${per(r.serverCpu)} | ${per(r.browserCpu)} | ${per(r.requests, 1)} | ${per(r.bytes / 1e6)} | ${r.polls === undefined || Number.isNaN(r.polls) ? 'no answer' : per(r.polls)} | ${r.longestWaitMs.toFixed(0)} |\n`);
}
process.stdout.write(`\nload ${loadavg()[0]?.toFixed(2)} at the end\n`);
