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
import { pino } from 'pino';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { startFulcrum, type Fulcrum } from '../../src/main.js';
import { describeChromium, launchChromium } from '../support/chromium.js';
import { scaled, waitFor } from '../support/wait.js';

const CLUSTERS = Array.from({ length: 60 }, (_, i) => `c-${String(i).padStart(3, '0')}`);
/** The dashboard's bound on clusters polled at once (MAX_LIVE in src/admin/dashboard-page.ts). */
const MAX_LIVE = 12;

describeChromium('dashboard with many clusters in a real Chromium', () => {
  let dir: string;
  let fulcrum: Fulcrum;
  let context: BrowserContext;
  let page: Page;
  /** Every GET the page made, by path, since `since` was reset. */
  let requested: string[] = [];
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
    fulcrum = await startFulcrum({
      configPath,
      xdsPort: 0,
      xdsAddress: '127.0.0.1',
      adminPort: 0,
      adminAddress: '127.0.0.1',
      logger: pino({ level: 'silent' }),
      engineTickMs: 200,
      dataDir: join(dir, 'data'),
    });
    context = await launchChromium(join(dir, 'chromium-profile'));
    page = context.pages()[0] ?? (await context.newPage());
    page.on('request', (req) => void requested.push(new URL(req.url()).pathname));
    page.on('pageerror', (err) => pageErrors.push(err.message));
    page.on('console', (msg) => {
      if (msg.type() === 'error') pageErrors.push(msg.text());
    });
  }, scaled(60_000));

  afterAll(async () => {
    await context?.close();
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
    for (const name of polledClusters()) expect(name).toMatch(/^c-04\d$/);
    await page.fill('#filter', '');
    await waitFor(async () => (await page.locator('section[data-cluster]:visible').count()) === CLUSTERS.length, { what: 'every cluster shown again', timeoutMs: scaled(5_000) });
    expect(pageErrors).toEqual([]);
  });
});
