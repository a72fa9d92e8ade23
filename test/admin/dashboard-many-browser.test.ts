/**
 * The dashboard with many clusters, in a real headless Chromium (test/support/chromium.ts): the
 * list is one GET /v1/weights; a cluster's weights are polled only while its card is on or near
 * the screen, a bounded number at a time; scrolling to a card charts it; the filter narrows the
 * list and charts what matches. At 1,000 clusters the page used to read every cluster's weights
 * every second (bench/dashboard-load.ts measures that cost).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { stringify } from 'yaml';
import type { Fulcrum } from '../../src/main.js';
import { describeChromium, launchChromium } from '../support/chromium.js';
import { scaled, waitFor } from '../support/wait.js';
import { ADS, CDS, XdsClient } from '../support/xds-client.js';
import { startLoopbackFulcrum } from '../support/loopback-fulcrum.js';

const CLUSTERS = Array.from({ length: 60 }, (_, i) => `c-${String(i).padStart(3, '0')}`);
/** The dashboard's bounds (src/admin/dashboard-page.ts): clusters polled at once, proxy rows, streams polled every poll. */
const MAX_LIVE = 12;
const KEEP_VIEWS = 24;
const PROXY_ROWS = 200;
const MANY_PROXIES = 500;

describeChromium('dashboard with many clusters in a real Chromium', () => {
  let dir: string;
  let fulcrum: Fulcrum;
  let context: BrowserContext;
  let page: Page;
  let clients: XdsClient[] = [];
  /** Every GET the page made, by path, since `since` was reset. */
  let requested: string[] = [];
  /** The query of every GET /v1/proxies the page made. */
  let proxyQueries: string[] = [];
  const pageErrors: string[] = [];

  const section = (name: string): string => `section[data-cluster="${name}"]`;
  const polledClusters = (): Set<string> =>
    new Set(requested.filter((p) => p.startsWith('/v1/weights/')).map((p) => decodeURIComponent(p.slice('/v1/weights/'.length))));
  /** Polls completed by the page (its body's data-polls). */
  const polls = async (): Promise<number> => Number(await page.getAttribute('body', 'data-polls'));
  const afterPolls = async (n: number): Promise<void> => {
    const target = (await polls()) + n;
    await waitFor(async () => (await polls()) >= target, { what: `${n} more polls`, timeoutMs: scaled(20_000), intervalMs: 100 });
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fulcrum-dashboard-many-'));
    const configPath = join(dir, 'fulcrum.yaml');
    const clusters = CLUSTERS.map((name, c) => ({ name, endpoints: [1, 2, 3].map((e) => ({ address: `10.0.${c}.${e}`, port: 8080, weight: e })) }));
    await writeFile(configPath, stringify({ clusters }));
    fulcrum = await startLoopbackFulcrum(configPath, {
      engineTickMs: 200,
      dataDir: join(dir, 'data'),
    });
    context = await launchChromium(join(dir, 'chromium-profile'));
    page = context.pages()[0] ?? (await context.newPage());
    page.on('request', (req) => {
      const url = new URL(req.url());
      requested.push(url.pathname);
      if (url.pathname === '/v1/proxies') proxyQueries.push(url.search);
    });
    page.on('pageerror', (err) => pageErrors.push(err.message));
    page.on('console', (msg) => {
      if (msg.type() === 'error') pageErrors.push(msg.text());
    });
  }, scaled(60_000));

  afterAll(async () => {
    await context?.close();
    for (const c of clients) c.close();
    await fulcrum?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('lists every cluster from one GET /v1/weights, and polls the weights of only those on screen, at most a bounded number', async () => {
    await page.goto(`http://127.0.0.1:${fulcrum.adminPort}/`);
    await page.waitForSelector(`${section('c-000')} .chart[data-metric="weight"] canvas`, { timeout: scaled(15_000) });
    expect(await page.locator('section[data-cluster]').count()).toBe(CLUSTERS.length);
    expect(await page.textContent(`${section('c-059')} .cluster-meta`)).toContain('3 endpoints, 3 in rotation');
    requested = [];
    await afterPolls(3);
    const polled = polledClusters();
    expect(polled.size).toBeGreaterThan(0);
    expect(polled.size).toBeLessThanOrEqual(MAX_LIVE);
    expect(polled.has('c-000')).toBe(true);
    expect(polled.has('c-059')).toBe(false);
    // The list is the overview, never every cluster with every endpoint.
    expect(requested.filter((p) => p === '/v1/weights').length).toBeGreaterThanOrEqual(3);
    expect(requested).not.toContain('/v1/clusters');
    // Charts only where polled: the last card has none.
    expect(await page.locator(`${section('c-059')} canvas`).count()).toBe(0);
    expect(await page.textContent('#status')).toMatch(/60 cluster\(s\), \d+ charted/);
  });

  it('scrolled to the end, the cards on screen are charted and polled, and the ones left behind no longer are', async () => {
    await page.evaluate('window.scrollTo(0, document.body.scrollHeight)');
    // Cards charted near the screen grow (and push the ones below them down): wait for a still page.
    await afterPolls(2);
    const onScreen = (): Promise<string[]> =>
      page.evaluate(`[...document.querySelectorAll('section[data-cluster]')]
        .filter((s) => { const r = s.getBoundingClientRect(); return r.bottom > 0 && r.top < innerHeight; })
        .map((s) => s.getAttribute('data-cluster'))`);
    const shown = await onScreen();
    expect(shown.length).toBeGreaterThan(0);
    expect(shown).not.toContain('c-000');
    requested = [];
    await afterPolls(3);
    const polled = polledClusters();
    for (const name of shown) expect(polled.has(name), `${name} is on screen`).toBe(true);
    expect(polled.has('c-000')).toBe(false);
    expect(polled.size).toBeLessThanOrEqual(MAX_LIVE);
    const first = shown[0] as string;
    await page.waitForSelector(`${section(first)} .chart[data-metric="weight"] canvas`, { timeout: scaled(15_000) });
    // The rows show what the API reports.
    const weights = await page.$$eval(`${section(first)} tr[data-endpoint]`, (rows) => rows.map((r) => Number(r.getAttribute('data-weight'))));
    expect(weights).toEqual([1, 2, 3]);
  });

  it('the filter narrows the list to the matching clusters, and charts them', async () => {
    await page.evaluate('window.scrollTo(0, 0)');
    await page.fill('#filter', 'c-04');
    await waitFor(async () => (await page.locator('section[data-cluster]:visible').count()) === 10, { what: 'ten clusters shown', timeoutMs: scaled(5_000) });
    expect(await page.textContent('#cluster-count')).toBe('10 of 60 cluster(s) match');
    await page.waitForSelector(`${section('c-040')} .chart[data-metric="weight"] canvas`, { timeout: scaled(15_000) });
    requested = [];
    await afterPolls(3);
    const polled = polledClusters();
    expect(polled.has('c-040')).toBe(true);
    for (const name of polled) expect(name).toMatch(/^c-04\d$/);
    await page.fill('#filter', '');
    await waitFor(async () => (await page.locator('section[data-cluster]:visible').count()) === CLUSTERS.length, { what: 'every cluster shown again', timeoutMs: scaled(5_000) });
    expect(pageErrors).toEqual([]);
  });

  it('scrolled through every card, at most 24 keep their charts off screen', async () => {
    await page.evaluate('window.scrollTo(0, 0)');
    await afterPolls(1);
    const charted = (): Promise<number> => page.evaluate(`document.querySelectorAll('section[data-cluster] canvas').length / 3`);
    let most = 0;
    for (let step = 0; step < 40; step++) {
      const atEnd = await page.evaluate(`window.scrollY + innerHeight >= document.body.scrollHeight - 2`);
      if (atEnd) break;
      await page.evaluate('window.scrollBy(0, 1800)');
      await afterPolls(1);
      most = Math.max(most, await charted());
    }
    // Every card passed the screen (more than the cap were charted on the way); never more than the cap kept at once.
    expect(await page.locator(`${section('c-059')} canvas`).count()).toBeGreaterThan(0);
    expect(most).toBeGreaterThan(0);
    expect(await charted()).toBeLessThanOrEqual(KEEP_VIEWS);
    expect(await page.locator(`${section('c-000')} canvas`).count()).toBe(0);
  });

  it('a failing list read is shown until one succeeds, and the cards on screen are still polled meanwhile', async () => {
    // The browser's network answers the list with a 503, as a failing server would.
    const theList = (url: URL): boolean => url.pathname === '/v1/weights';
    await page.route(theList, (route) => route.fulfill({ status: 503, contentType: 'application/json', body: JSON.stringify({ message: 'store unavailable' }) }));
    try {
      await waitFor(async () => /update failed: store unavailable/.test((await page.textContent('#status')) ?? ''), { what: 'the list error shown', timeoutMs: scaled(10_000), intervalMs: 100 });
      requested = [];
      await afterPolls(3);
      expect(await page.textContent('#status')).toMatch(/update failed: store unavailable/);
      expect(polledClusters().size).toBeGreaterThan(0);
    } finally {
      await page.unroute(theList);
    }
    await waitFor(async () => /^live · updated/.test((await page.textContent('#status')) ?? ''), { what: 'live again', timeoutMs: scaled(10_000), intervalMs: 100 });
    // Chromium logs each refused request to the console: those are the ones this test made.
    const refused = pageErrors.filter((e) => /status of 503/.test(e));
    expect(refused.length).toBeGreaterThan(0);
    pageErrors.splice(0, pageErrors.length, ...pageErrors.filter((e) => !/status of 503/.test(e)));
  });

  it('past 500 streams the proxy table shows 200, NACKED first, asked for by state, and is re-read every 5 polls', async () => {
    const count = MANY_PROXIES + 20;
    // The server takes at most 100 streams per connection (server.xds limits): 50 per client.
    clients = Array.from({ length: Math.ceil(count / 50) }, () => XdsClient.forPort(fulcrum.xdsPort));
    const node = (i: number): string => `sidecar-${String(i).padStart(4, '0')}`;
    const streams = Array.from({ length: count }, (_, i) => {
      const stream = (clients[Math.floor(i / 50)] as XdsClient).sotw(ADS);
      stream.request(CDS, [], { node: { id: node(i), cluster: 'default', user_agent_name: 'envoy' } });
      return stream;
    });
    await Promise.all(
      streams.map(async (stream, i) => {
        const response = await stream.nextOf(CDS, 30_000);
        if (i === 300) stream.nack(response, 'cluster refused here');
        else stream.ack(response);
      }),
    );
    await waitFor(async () => (await page.textContent('#proxy-count')) === `(${count} streams)`, { what: 'every stream counted', timeoutMs: scaled(20_000), intervalMs: 200 });
    await waitFor(async () => (await page.getAttribute('#proxies tbody tr:first-child', 'data-node')) === node(300), { what: 'the NACKing proxy first', timeoutMs: scaled(20_000), intervalMs: 200 });
    expect(await page.locator('#proxies tbody tr').count()).toBe(PROXY_ROWS);
    expect(await page.getAttribute('#proxies tbody tr:first-child td[data-type="CDS"]', 'data-state')).toBe('NACKED');
    // Troubled first (NACKED, then STALE: some ACKs may not have been read when the table was), each group in node order.
    const rows: [string, string][] = await page.$$eval('#proxies tbody tr', (trs) =>
      trs.map((tr) => [tr.getAttribute('data-node') ?? '', [...tr.querySelectorAll('td[data-type]')].map((td) => td.getAttribute('data-state')).join(' ')]),
    );
    const rank = ([, states]: [string, string]): number => (states.includes('NACKED') ? 0 : states.includes('STALE') ? 1 : 2);
    for (let i = 1; i < rows.length; i++) {
      const [a, b] = [rows[i - 1] as [string, string], rows[i] as [string, string]];
      expect(rank(a) < rank(b) || (rank(a) === rank(b) && a[0] < b[0]), `${a.join(' ')} before ${b.join(' ')}`).toBe(true);
    }
    expect(await page.textContent('#proxies-more')).toBe(`Showing ${PROXY_ROWS} of ${count} streams, NACKED and STALE first; every one: GET /v1/proxies (?state=NACKED: the troubled ones).`);
    proxyQueries = [];
    await afterPolls(10);
    // Each read: the first 501 streams, then the NACKED and the STALE ones, 200 at most; never the
    // whole fleet. (The reset may have fallen inside a read: its state queries come first then.)
    const first = `?limit=${MANY_PROXIES + 1}`;
    const reads = proxyQueries.slice(proxyQueries.indexOf(first));
    const groups = reads.filter((q) => q === first).length;
    expect(groups).toBeGreaterThanOrEqual(1);
    expect(groups).toBeLessThanOrEqual(3);
    expect(reads.map((q) => (q === first ? 'read' : q))).toEqual(
      Array.from({ length: groups }, () => ['read', `?state=NACKED&limit=${PROXY_ROWS}`, `?state=STALE&limit=${PROXY_ROWS}`]).flat(),
    );
    expect(pageErrors).toEqual([]);
  });
});
