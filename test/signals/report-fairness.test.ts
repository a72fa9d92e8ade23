import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFulcrum, type Fulcrum } from '../../src/main.js';
import { encodeReportRequest, REPORT_METHOD_PATH } from '../../src/signals/report-grpc.js';
import { callEnd, connectH2, grpcFrame, openCall } from '../support/raw-grpc.js';
import { scaled } from '../support/wait.js';

/**
 * One client sending reports as fast as it can must not cost the others: each sender (IP
 * address) has a budget of samples per second, HTTP and gRPC together
 * (server.xds.limits.reportSamplesPerSecondPerPeer). Without it, one client sending full batches
 * on 64 connections held xDS pushes 2 s and another agent's report 1.8 s (bench/report-flood.ts).
 * Here the budget is one batch, refilled at one sample a second: the flooder (127.0.0.1) spends
 * it with its first batch; 127.0.0.2 is another agent.
 */
const FLOODER = '127.0.0.1';
const AGENT = '127.0.0.2';
const OTHER = '127.0.0.3';
const ENDPOINT = '10.0.0.1:8080';

let dir: string;
let fulcrum: Fulcrum | undefined;

const samples = (n: number): object[] => Array.from({ length: n }, () => ({ cluster: 'web', endpoint: ENDPOINT, time: Date.now(), cpu: 0.5 }));

interface HttpAnswer {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Record<string, unknown>;
}

/** POST /v1/reports of `count` samples (or these) from `localAddress`, on a connection of its own. */
function post(localAddress: string, count: number | object[]): Promise<HttpAnswer> {
  const body = JSON.stringify({ reporter: localAddress, samples: typeof count === 'number' ? samples(count) : count });
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port: fulcrum?.adminPort, localAddress, path: '/v1/reports', method: 'POST', agent: false, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: JSON.parse(Buffer.concat(chunks).toString()) as Record<string, unknown> }));
      },
    );
    // A refused request's connection is closed while its body may still be on its way.
    req.on('error', reject);
    req.end(body);
  });
}

/** A ReportService call from `localAddress`: its gRPC status and message. */
async function report(localAddress: string, count: number): Promise<{ status: number | undefined; message: string }> {
  const session = await connectH2(fulcrum?.xdsPort ?? 0, localAddress);
  try {
    const call = openCall(session, REPORT_METHOD_PATH);
    const ended = callEnd(call);
    const wire = samples(count).map(() => ({ cluster: 'web', endpoint: ENDPOINT, time: { seconds: Math.floor(Date.now() / 1000) }, cpu: 0.5 }));
    call.end(grpcFrame(encodeReportRequest({ reporter: localAddress, samples: wire })));
    return await ended;
  } finally {
    session.close();
  }
}

async function refusedCount(transport: string): Promise<number> {
  const text = await fulcrum!.metrics.registry.metrics();
  return Number(new RegExp(`^fulcrum_reports_refused_total\\{transport="${transport}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? Number.NaN);
}

describe('report budgets per sender', () => {
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fulcrum-report-fairness-'));
    const config = join(dir, 'fulcrum.yaml');
    await writeFile(
      config,
      'server:\n  xds:\n    limits: { reportSamplesPerSecondPerPeer: 1, reportBurstSamplesPerPeer: 10000 }\n' +
        'clusters:\n  - name: web\n    weighting: { policy: pid }\n    endpoints: [{ address: 10.0.0.1, port: 8080 }]\n',
    );
    fulcrum = await startFulcrum({ configPath: config, dataDir: join(dir, 'data'), xdsPort: 0, xdsAddress: '127.0.0.1', adminPort: 0, adminAddress: '127.0.0.1', logger: pino({ level: 'silent' }), auth: { adminTokens: [], readTokens: [] } });
  }, scaled(60_000));

  afterAll(async () => {
    await fulcrum?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('refuses a sender past its budget, unread (HTTP 429 with Retry-After; gRPC RESOURCE_EXHAUSTED), and still takes another sender\'s samples', async () => {
    const full = await post(FLOODER, 10_000);
    expect(full.status).toBe(200);

    const again = await post(FLOODER, 100);
    expect(again.status).toBe(429);
    expect(Number(again.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(again.headers.connection).toBe('close');
    expect(again.body).toMatchObject({ code: 'TOO_MANY_REQUESTS', message: expect.stringMatching(/reportSamplesPerSecondPerPeer/) as unknown });

    // One budget for both transports: the flooder's gRPC reports are refused too, before decoding.
    const overGrpc = await report(FLOODER, 100);
    expect(overGrpc.status).toBe(8); // RESOURCE_EXHAUSTED
    expect(overGrpc.message).toMatch(/reportSamplesPerSecondPerPeer/);

    const agentHttp = await post(AGENT, 1);
    expect(agentHttp.status).toBe(200);
    expect(agentHttp.body).toMatchObject({ accepted: 1 });
    const agentGrpc = await report(AGENT, 1);
    expect(agentGrpc.status).toBe(0);

    expect(await refusedCount('http')).toBe(1);
    expect(await refusedCount('grpc')).toBe(1);
  });

  it("takes an agent's latency though another sender fills the endpoint's samples with newer ones", async () => {
    // 16 samples (the ring's size) for the endpoint, stamped now: within the other sender's budget.
    expect((await post(OTHER, 16)).body).toMatchObject({ accepted: 16 });
    const latency = await post(AGENT, [{ cluster: 'web', endpoint: ENDPOINT, time: Date.now() - 1_000, latencyMs: 12 }]);
    expect(latency.body).toEqual({ accepted: 1, rejected: [] });
  });
});
