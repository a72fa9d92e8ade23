/**
 * Examples for the OpenAPI document: a request body for every operation that takes one, the path
 * parameters they go with, and an answer for the weights views. One story, in the order an
 * operator meets it: create cluster `shop` (two endpoints), change it, route listener `ingress`
 * to it, report load, read its weights. Each example is a request the API accepts in that order
 * (test/admin/api-examples.test.ts sends them), so a client generated from the document, or
 * Schemathesis's examples phase, starts from something that works.
 */

const SHOP_ENDPOINTS = [
  { address: '10.0.0.1', port: 8080, weight: 1, locality: { region: 'eu-west', zone: 'a' } },
  { address: '10.0.0.2', port: 8080, weight: 2, locality: { region: 'eu-west', zone: 'b' } },
];

/** Path parameters by name. */
export const PARAMETER_EXAMPLES: Readonly<Record<string, string | number>> = {
  name: 'shop',
  cluster: 'shop',
  address: '10.0.0.1',
  port: 8080,
  nodeId: 'sidecar-shop-0',
  id: 1,
};

/** Request bodies by operation (`METHOD path` as the document spells the path), in a working order. */
export const REQUEST_EXAMPLES: ReadonlyArray<readonly [operation: string, body: unknown]> = [
  ['PUT /v1/clusters/{name}', { name: 'shop', lbPolicy: 'LEAST_REQUEST', weighting: { policy: 'pid', setpoint: 'mean' }, endpoints: SHOP_ENDPOINTS }],
  ['PATCH /v1/clusters/{name}', { connectTimeoutMs: 500 }],
  ['PUT /v1/clusters/{name}/endpoints', { mode: 'upsert', endpoints: [{ address: '10.0.0.3', port: 8080, weight: 2 }] }],
  ['PUT /v1/clusters/{name}/endpoints/{address}/{port}', { address: '10.0.0.1', port: 8080, weight: 3, locality: { region: 'eu-west', zone: 'a' } }],
  ['PATCH /v1/clusters/{name}/endpoints/{address}/{port}', { weight: 5 }],
  ['PATCH /v1/clusters/{name}/policy', { weighting: { gains: { kp: 0.3 } } }],
  ['PUT /v1/listeners/{name}', { name: 'shop', address: '127.0.0.1', port: 10000, routes: [{ prefix: '/', cluster: 'shop' }] }],
  ['PATCH /v1/listeners/{name}', { routes: [{ prefix: '/api', cluster: 'shop' }, { prefix: '/', cluster: 'shop' }] }],
  ['POST /v1/reports', { reporter: 'agent-1', samples: [{ cluster: 'shop', endpoint: '10.0.0.1:8080', cpu: 0.42, latencyMs: 12, rps: 150 }] }],
];

/** Answers by operation: the weights views, where nothing routable (lastResort) is shown. */
export const RESPONSE_EXAMPLES: ReadonlyArray<readonly [operation: string, body: unknown]> = [
  [
    'GET /v1/weights',
    {
      clusters: [
        { cluster: 'shop', owner: 'api', lbPolicy: 'LEAST_REQUEST', policy: 'pid', endpoints: 2, inRotation: 2, unhealthy: 0, draining: 0, computed: true, failStatic: false, missingSignals: 0 },
        { cluster: 'legacy', owner: 'file', lbPolicy: 'ROUND_ROBIN', policy: 'static', endpoints: 2, inRotation: 0, unhealthy: 1, draining: 1, computed: true, failStatic: false, missingSignals: 0, lastResort: 'DRAINING' },
      ],
    },
  ],
  [
    'GET /v1/weights/{cluster}',
    {
      cluster: 'legacy',
      computed: true,
      policy: 'static',
      failStatic: false,
      lastResort: 'DRAINING',
      endpoints: [
        { endpoint: '10.1.0.1:80', staticWeight: 1, weight: 1, share: 0, health: 'UNHEALTHY' },
        { endpoint: '10.1.0.2:80', staticWeight: 1, weight: 1, share: 100, health: 'DRAINING' },
      ],
    },
  ],
];

type Operation = {
  parameters?: { in?: string; name?: string; example?: unknown }[];
  requestBody?: { content?: Record<string, { example?: unknown }> };
  responses?: Record<string, { content?: Record<string, { example?: unknown }> }>;
};

/** The document with the examples above set on their operations (JSON media types only). */
export function withExamples<T>(doc: T): T {
  const paths = (doc as { paths?: Record<string, Record<string, Operation>> }).paths ?? {};
  const operation = (key: string): Operation | undefined => {
    const [method = '', path = ''] = key.split(' ');
    return paths[path]?.[method.toLowerCase()];
  };
  for (const operations of Object.values(paths)) {
    for (const op of Object.values(operations)) {
      for (const p of op.parameters ?? []) if (p.in === 'path' && p.name !== undefined && p.name in PARAMETER_EXAMPLES) p.example = PARAMETER_EXAMPLES[p.name];
    }
  }
  for (const [key, body] of REQUEST_EXAMPLES) {
    const media = operation(key)?.requestBody?.content?.['application/json'];
    if (media) media.example = body;
  }
  for (const [key, body] of RESPONSE_EXAMPLES) {
    const media = operation(key)?.responses?.['200']?.content?.['application/json'];
    if (media) media.example = body;
  }
  return doc;
}
