import { Value } from '@sinclair/typebox/value';
import { afterAll, describe, expect, it } from 'vitest';
import { WeightsOverview, WeightsView } from '../../src/admin/routes/weights.js';
import { AdaptiveWeights } from '../../src/weights/adaptive-weights.js';
import { adminStoreApp } from '../support/admin-store-app.js';

/**
 * The OpenAPI document's examples: every operation that takes a body has one, and they work,
 * sent in the document's order with its path parameter examples; the answers' examples fit
 * their schemas.
 */
type Media = { example?: unknown };
type Operation = { parameters?: { in: string; name: string; example?: unknown }[]; requestBody?: { content: Record<string, Media> }; responses?: Record<string, { content?: Record<string, Media> }> };

describe('the OpenAPI document\'s examples', () => {
  const adaptive = new AdaptiveWeights();
  const { app, close } = adminStoreApp('fulcrum-api-examples-', { deps: () => ({ weights: adaptive, reports: () => ({ accepted: 1, rejected: [] }) }) });
  afterAll(close);

  async function operations(): Promise<[string, string, Operation][]> {
    const doc = (await app.inject({ method: 'GET', url: '/openapi.json' })).json<{ paths: Record<string, Record<string, Operation>> }>();
    return Object.entries(doc.paths).flatMap(([path, ops]) => Object.entries(ops).map(([method, op]): [string, string, Operation] => [method.toUpperCase(), path, op]));
  }

  it('every operation with a body has an example, every path parameter one, and each request works as shown', async () => {
    const ops = await operations();
    const withBody = ops.filter(([, , op]) => op.requestBody);
    expect(withBody.length).toBeGreaterThanOrEqual(9);
    for (const [method, path, op] of ops) {
      for (const p of op.parameters ?? []) if (p.in === 'path') expect(p.example, `${method} ${path} ${p.name}`).toBeDefined();
    }
    // The bodies in the document's order: create before change, the cluster before the listener routing to it.
    const order = ['PUT /v1/clusters/{name}', 'PATCH /v1/clusters/{name}', 'PUT /v1/clusters/{name}/endpoints', 'PUT /v1/clusters/{name}/endpoints/{address}/{port}', 'PATCH /v1/clusters/{name}/endpoints/{address}/{port}', 'PATCH /v1/clusters/{name}/policy', 'PUT /v1/listeners/{name}', 'PATCH /v1/listeners/{name}', 'POST /v1/reports'];
    expect(withBody.map(([m, p]) => `${m} ${p}`).sort()).toEqual([...order].sort());
    for (const key of order) {
      const [method, path, op] = withBody.find(([m, p]) => `${m} ${p}` === key)!;
      const example = op.requestBody?.content['application/json']?.example;
      expect(example, key).toBeDefined();
      const url = path.replace(/\{(\w+)\}/g, (_m, name: string) => encodeURIComponent(String(op.parameters?.find((p) => p.name === name)?.example)));
      const res = await app.inject({ method: method as 'PUT', url, payload: example as object });
      expect(res.statusCode, `${key}: ${res.body}`).toBeLessThan(300);
    }
  });

  it('the weights views\' answer examples fit their schemas', async () => {
    const ops = await operations();
    const answer = (key: string): unknown => ops.find(([m, p]) => `${m} ${p}` === key)?.[2].responses?.['200']?.content?.['application/json']?.example;
    expect(Value.Check(WeightsOverview, answer('GET /v1/weights')), 'GET /v1/weights').toBe(true);
    expect(Value.Check(WeightsView, answer('GET /v1/weights/{cluster}')), 'GET /v1/weights/{cluster}').toBe(true);
  });
});
