import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { DASHBOARD_CSS, DASHBOARD_HTML, DASHBOARD_JS } from '../dashboard-page.js';
import { ERRORS } from './schema-parts.js';

/**
 * The operator dashboard: a static page at `/` that polls the JSON API every second (the weights
 * of every cluster, the proxies' sync state) and charts each endpoint's published weight, cpu
 * utilization and latency over a rolling window kept in the browser.
 *
 * The page and its assets (under /dashboard/) are open, like /docs: they hold no state. The /v1
 * APIs it calls need a bearer token when tokens are configured; the page asks for one and keeps it
 * in sessionStorage. The chart library, uPlot, is served from node_modules as its package ships it.
 */

export const DASHBOARD_PREFIX = '/dashboard/';

const require = createRequire(import.meta.url);

/** uPlot's files, read once on first use. */
const uplotFile = (() => {
  const cache = new Map<string, string>();
  return (file: string): string => {
    let text = cache.get(file);
    if (text === undefined) {
      text = readFileSync(require.resolve(`uplot/dist/${file}`), 'utf8');
      cache.set(file, text);
    }
    return text;
  };
})();

/** The page may load its own scripts and styles and call its own API, nothing else. */
const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

interface Asset {
  readonly url: string;
  readonly summary: string;
  readonly contentType: string;
  readonly cacheControl: string;
  readonly body: () => string;
}

const ASSETS: readonly Asset[] = [
  {
    url: '/',
    summary: 'The operator dashboard (HTML): per-cluster weight, utilization and latency charts, proxy sync status',
    contentType: 'text/html; charset=utf-8',
    cacheControl: 'no-cache',
    body: () => DASHBOARD_HTML,
  },
  {
    url: `${DASHBOARD_PREFIX}dashboard.js`,
    summary: 'The dashboard\'s script',
    contentType: 'text/javascript; charset=utf-8',
    cacheControl: 'no-cache',
    body: () => DASHBOARD_JS,
  },
  {
    url: `${DASHBOARD_PREFIX}dashboard.css`,
    summary: 'The dashboard\'s stylesheet',
    contentType: 'text/css; charset=utf-8',
    cacheControl: 'no-cache',
    body: () => DASHBOARD_CSS,
  },
  {
    url: `${DASHBOARD_PREFIX}uplot.iife.min.js`,
    summary: 'The chart library (uPlot), as its npm package ships it',
    contentType: 'text/javascript; charset=utf-8',
    cacheControl: 'public, max-age=3600',
    body: () => uplotFile('uPlot.iife.min.js'),
  },
  {
    url: `${DASHBOARD_PREFIX}uplot.min.css`,
    summary: 'The chart library\'s stylesheet (uPlot)',
    contentType: 'text/css; charset=utf-8',
    cacheControl: 'public, max-age=3600',
    body: () => uplotFile('uPlot.min.css'),
  },
];

/** The URLs the dashboard serves (all open). */
export const DASHBOARD_URLS: readonly string[] = ASSETS.map((a) => a.url);

/** The page and its assets, each with its own media type (open: see auth.ts). */
export const dashboardRoutes: FastifyPluginAsyncTypebox = async (app) => {
  for (const asset of ASSETS) {
    const mediaType = asset.contentType.split(';')[0] ?? asset.contentType;
    app.get(
      asset.url,
      {
        schema: {
          tags: ['dashboard'],
          summary: asset.summary,
          response: {
            200: { description: asset.summary, content: { [mediaType]: { schema: Type.String() } } },
            ...ERRORS,
          },
        },
      },
      async (_request, reply) => {
        reply.code(200).header('content-type', asset.contentType).header('cache-control', asset.cacheControl);
        if (asset.url === '/') reply.header('content-security-policy', CSP).header('referrer-policy', 'no-referrer');
        return reply.send(asset.body());
      },
    );
  }
};
