/**
 * The admin API carries a cluster's Envoy-side protection: PUT and GET round-trip it, a policy
 * PATCH changes it and keeps the rest, and bad values are 400s naming the field.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { AdminApp } from '../../src/admin/app.js';
import type { Store } from '../../src/catalog/store/index.js';
import { AdaptiveWeights } from '../../src/weights/adaptive-weights.js';
import { adminStoreApp } from '../support/admin-store-app.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

function app(): { app: AdminApp; store: Store } {
  const { app: built, store, close } = adminStoreApp('fulcrum-protect-api-', { deps: () => ({ version: 't', weights: new AdaptiveWeights() }) });
  cleanups.push(close);
  return { app: built, store };
}

type Body = Record<string, unknown>;
async function call(a: AdminApp, method: 'GET' | 'PUT' | 'PATCH', url: string, payload?: Body): Promise<{ status: number; body: Body }> {
  const res = await a.inject({ method, url, ...(payload ? { payload } : {}) });
  return { status: res.statusCode, body: JSON.parse(res.body) as Body };
}

const PROTECTED = {
  lbPolicy: 'CLIENT_SIDE_WEIGHTED_ROUND_ROBIN',
  clientSideWeightedRoundRobin: { blackoutPeriodMs: 2000 },
  outlierDetection: { consecutive5xx: 3, failurePercentage: { enabled: true, threshold: 60 } },
  retryPolicy: { numRetries: 1, retryOn: ['connect-failure', 'retriable-status-codes'], retriableStatusCodes: [503, 504] },
  healthCheck: { kind: 'tcp', intervalMs: 1000 },
  endpoints: [{ address: '10.0.0.1', port: 80 }],
};

describe('protection through the admin API', () => {
  it('PUT then GET returns the protection as written; the store keeps it for the catalog', async () => {
    const { app: a, store } = app();
    expect((await call(a, 'PUT', '/v1/clusters/web', PROTECTED)).status).toBe(201);
    const got = await call(a, 'GET', '/v1/clusters/web');
    expect(got.body).toMatchObject({
      lbPolicy: PROTECTED.lbPolicy,
      clientSideWeightedRoundRobin: PROTECTED.clientSideWeightedRoundRobin,
      outlierDetection: PROTECTED.outlierDetection,
      retryPolicy: PROTECTED.retryPolicy,
      healthCheck: PROTECTED.healthCheck,
    });
    expect(store.catalog().clusters.find((c) => c.name === 'web')?.retryPolicy).toEqual(PROTECTED.retryPolicy);
  });

  it('a policy PATCH changes one protection field and keeps the others; leaving client-side WRR drops its block', async () => {
    const { app: a } = app();
    await call(a, 'PUT', '/v1/clusters/web', PROTECTED);
    const patched = await call(a, 'PATCH', '/v1/clusters/web/policy', { retryPolicy: { numRetries: 2 }, lbPolicy: 'ROUND_ROBIN', outlierDetection: { enabled: false } });
    expect(patched.status).toBe(200);
    expect(patched.body.retryPolicy).toEqual({ ...PROTECTED.retryPolicy, numRetries: 2 });
    expect(patched.body.outlierDetection).toEqual({ ...PROTECTED.outlierDetection, enabled: false });
    expect(patched.body.healthCheck).toEqual(PROTECTED.healthCheck);
    expect(patched.body.clientSideWeightedRoundRobin).toBeUndefined();
  });

  it('refuses what Envoy would, naming the field', async () => {
    const { app: a } = app();
    const bad = await call(a, 'PUT', '/v1/clusters/web', { ...PROTECTED, outlierDetection: { maxEjectionPercent: 150 } });
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.body)).toContain('maxEjectionPercent');
    await call(a, 'PUT', '/v1/clusters/web', PROTECTED);
    const patch = await call(a, 'PATCH', '/v1/clusters/web/policy', { healthCheck: { kind: 'grpc' } });
    expect(patch.status).toBe(400);
    expect(JSON.stringify(patch.body)).toContain('HTTP/2');
  });
});
