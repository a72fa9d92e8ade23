/**
 * The dashboard's routes through app.inject(): the page, its assets and their content types, that
 * they are open when tokens are configured while the APIs the page calls are not, that they are in
 * the OpenAPI document, and that the browser script at least parses. Its behaviour in a real
 * browser: dashboard-browser.test.ts.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Validator } from '@seriousme/openapi-schema-validator';
import { describe, expect, it } from 'vitest';
import { buildAdminApp, type AdminDeps } from '../../src/admin/app.js';
import { DASHBOARD_JS } from '../../src/admin/dashboard-page.js';
import { DASHBOARD_URLS } from '../../src/admin/routes/dashboard.js';
import { Metrics } from '../../src/telemetry/metrics.js';
import { XdsCache } from '../../src/xds/cache.js';
import { ProxyRegistry } from '../../src/xds/proxy-status.js';

function app(overrides: Partial<AdminDeps> = {}) {
  return buildAdminApp({
    registry: new ProxyRegistry(Date.now),
    cache: new XdsCache(),
    metrics: new Metrics({ processMetrics: false }),
    ready: () => ({ ready: true, reasons: [] }),
    ...overrides,
  });
}

const uplot = (file: string): string => readFileSync(createRequire(import.meta.url).resolve(`uplot/dist/${file}`), 'utf8');

describe('dashboard routes', () => {
  it('GET / is the HTML page, with a CSP that allows only its own origin', async () => {
    const res = await app().inject({ method: 'GET', url: '/' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(res.headers['content-security-policy']).toContain("script-src 'self'");
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.body).toMatch(/^<!doctype html>/);
    expect(res.body).toContain('<script src="dashboard/dashboard.js" defer></script>');
    expect(res.body).toContain('<script src="dashboard/uplot.iife.min.js" defer></script>');
    expect(res.body).toContain('id="proxies"');
    // Every asset the page references is one the app serves.
    const refs = [...res.body.matchAll(/(?:src|href)="(dashboard\/[^"]+)"/g)].map((m) => `/${m[1]}`);
    expect(refs.sort()).toEqual(DASHBOARD_URLS.filter((u) => u !== '/').sort());
  });

  it.each([
    ['/dashboard/dashboard.js', 'text/javascript; charset=utf-8', () => DASHBOARD_JS],
    ['/dashboard/dashboard.css', 'text/css; charset=utf-8', undefined],
    ['/dashboard/uplot.iife.min.js', 'text/javascript; charset=utf-8', () => uplot('uPlot.iife.min.js')],
    ['/dashboard/uplot.min.css', 'text/css; charset=utf-8', () => uplot('uPlot.min.css')],
  ])('GET %s is served as %s', async (url, type, expected) => {
    const a = app();
    const res = await a.inject({ method: 'GET', url });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe(type);
    expect(res.body.length).toBeGreaterThan(500);
    if (expected) expect(res.body).toBe(expected());
    const head = await a.inject({ method: 'HEAD', url });
    expect(head.statusCode).toBe(200);
  });

  it('an unknown asset is a JSON 404', async () => {
    const res = await app().inject({ method: 'GET', url: '/dashboard/nope.js' });
    expect(res.statusCode).toBe(404);
    expect(res.headers['content-type']).toMatch(/application\/json/);
  });

  it('the page and its assets are open when tokens are configured; the APIs it polls are not', async () => {
    const a = app({ auth: { adminTokens: ['admin-secret'], readTokens: ['read-secret'] } });
    for (const url of DASHBOARD_URLS) expect((await a.inject({ method: 'GET', url })).statusCode, url).toBe(200);
    expect((await a.inject({ method: 'GET', url: '/v1/proxies' })).statusCode).toBe(401);
    expect((await a.inject({ method: 'GET', url: '/v1/proxies', headers: { authorization: 'Bearer read-secret' } })).statusCode).toBe(200);
    // Open means GET: the dashboard's paths take no writes.
    const post = await a.inject({ method: 'POST', url: '/dashboard/dashboard.js' });
    expect(post.statusCode).toBe(405);
    expect(post.headers.allow).toBe('GET, HEAD, OPTIONS');
  });

  it('every dashboard route is in a valid OpenAPI document, with its media type', async () => {
    const res = await app().inject({ method: 'GET', url: '/openapi.json' });
    const doc = JSON.parse(res.body) as { paths: Record<string, { get?: { tags?: string[]; responses: Record<string, { content?: Record<string, unknown> }> } }> };
    const result = await new Validator().validate(doc as unknown as Parameters<Validator['validate']>[0]);
    expect(result.errors ?? []).toEqual([]);
    expect(doc.paths['/']?.get?.responses['200']?.content).toHaveProperty(['text/html']);
    expect(doc.paths['/dashboard/dashboard.js']?.get?.responses['200']?.content).toHaveProperty(['text/javascript']);
    expect(doc.paths['/dashboard/uplot.min.css']?.get?.responses['200']?.content).toHaveProperty(['text/css']);
    for (const url of DASHBOARD_URLS) expect(doc.paths[url]?.get?.tags, url).toEqual(['dashboard']);
  });

  it('the browser script parses, and has nothing a template literal would have mangled', () => {
    expect(() => new Function(DASHBOARD_JS)).not.toThrow();
    expect(DASHBOARD_JS).not.toMatch(/innerHTML/);
  });
});
