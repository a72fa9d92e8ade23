import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ingestReports, ReportBatchError, type BatchSummary } from '../../src/signals/report-ingest.js';
import { decodeReportResponse, encodeReportRequest, REPORT_METHOD_PATH, reportService, type WireReportRequest } from '../../src/signals/report-grpc.js';
import { SignalStore } from '../../src/signals/signal-store.js';
import { serveLocal, type LocalGrpc } from '../support/local-grpc.js';

const WALL = Date.parse('2024-05-01T12:00:00Z');
const knows = (cluster: string, endpoint?: string) => cluster === 'web' && (endpoint === undefined || endpoint === '10.0.0.1:8080');

describe('ingestReports (the HTTP route body)', () => {
  it('stores valid samples on the store clock, preserving their age, and lists the rejections', () => {
    const store = new SignalStore({ now: () => 50_000 }); // a monotonic clock, unrelated to the wall clock
    const batches: unknown[] = [];
    const result = ingestReports(
      {
        reporter: 'agent-1',
        samples: [
          { cluster: 'web', endpoint: '10.0.0.1:8080', time: WALL - 2_000, cpu: 0.5 },
          { cluster: 'web', endpoint: '10.0.0.1:8080', cpu: 7 },
          { cluster: 'web', endpoint: '10.0.0.1:8080', time: new Date(WALL - 1_000).toISOString(), rps: 12 },
        ],
      },
      { store, knows, wallNow: () => WALL, onBatch: (b) => batches.push(b) },
    );
    expect(result.accepted).toBe(2);
    expect(result.rejected).toEqual([{ index: 1, field: 'cpu', reason: expect.stringMatching(/outside 0\.\.1/) as unknown as string }]);
    expect(store.samples('web', '10.0.0.1:8080')).toEqual([
      { at: 48_000, cpu: 0.5, source: 'report' },
      { at: 49_000, rps: 12, source: 'report' },
    ]);
    expect(batches).toEqual([{ transport: 'http', reporter: 'agent-1', received: 3, accepted: 2, rejected: 1, firstRejection: { field: 'cpu', reason: result.rejected[0]?.reason } }]);
  });

  it('throws ReportBatchError with a status code for a bad body or an oversized batch', () => {
    const deps = { store: new SignalStore(), knows, limits: { maxBatch: 2 } };
    expect(() => ingestReports([], deps)).toThrow(ReportBatchError);
    expect(() => ingestReports({ samples: 'x' }, deps)).toThrow(expect.objectContaining({ statusCode: 400 }) as unknown as Error);
    expect(() => ingestReports({ samples: [{}, {}, {}] }, deps)).toThrow(expect.objectContaining({ statusCode: 413, code: 'TOO_LARGE' }) as unknown as Error);
  });
});

describe('ReportService over loopback', () => {
  let loopback: LocalGrpc | undefined;
  let client: grpc.Client;
  const store = new SignalStore();
  const batches: BatchSummary[] = [];

  beforeAll(async () => {
    const svc = reportService({ store, knows, limits: { maxBatch: 100 }, onBatch: (b) => batches.push(b) });
    loopback = await serveLocal(svc);
    client = loopback.client;
  });

  afterAll(() => loopback?.close());

  function callRaw(bytes: Buffer): Promise<{ err: grpc.ServiceError | null; res?: ReturnType<typeof decodeReportResponse> }> {
    return new Promise((resolve) => {
      client.makeUnaryRequest(REPORT_METHOD_PATH, (b: Buffer) => b, decodeReportResponse, bytes, (err, res) => resolve({ err, ...(res ? { res } : {}) }));
    });
  }
  const call = (req: WireReportRequest) => callRaw(encodeReportRequest(req));
  const now = () => ({ seconds: Math.floor(Date.now() / 1000), nanos: 0 });

  it('accepts valid samples and rejects garbage fields one by one', async () => {
    const { err, res } = await call({
      reporter: 'agent',
      samples: [
        { cluster: 'web', endpoint: '10.0.0.1:8080', time: now(), cpu: 0.25, latency_ms: 12 },
        { cluster: 'web', endpoint: '10.0.0.1:8080', time: now(), cpu: NaN },
        { cluster: 'web', endpoint: '10.0.0.1:8080', time: now(), memory: -3 },
        { cluster: 'nope', endpoint: '10.0.0.1:8080', time: now(), rps: 1 },
        { cluster: 'web', endpoint: 'garbage', rps: 1 },
        { cluster: 'web', endpoint: '10.0.0.1:8080', time: { seconds: now().seconds + 3600 }, rps: 1 },
        { cluster: 'web', endpoint: '10.0.0.1:8080' },
        {},
      ],
    });
    expect(err).toBeNull();
    expect(res?.accepted).toBe(1);
    expect(res?.rejected.map((r) => [r.index, r.field])).toEqual([
      [1, 'cpu'],
      [2, 'memory'],
      [3, 'cluster'],
      [4, 'endpoint'],
      [5, 'time'],
      [6, 'sample'],
      [7, 'cluster'],
      [7, 'endpoint'],
      [7, 'sample'],
    ]);
    expect(store.latest('web', '10.0.0.1:8080')).toMatchObject({ cpu: 0.25, latencyMs: 12, source: 'report' });
  });

  it('fails an oversized batch with RESOURCE_EXHAUSTED', async () => {
    const samples = Array.from({ length: 101 }, () => ({ cluster: 'web', endpoint: '10.0.0.1:8080', rps: 1 }));
    const { err } = await call({ samples });
    expect(err?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
  });

  it('fails malformed bytes with a non-OK status, and keeps serving', async () => {
    const { err } = await callRaw(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]));
    expect(err).not.toBeNull();
    expect(err?.code).toBe(grpc.status.INTERNAL); // grpc-js: "Error deserializing request"
    const again = await call({ samples: [{ cluster: 'web', endpoint: '10.0.0.1:8080', rps: 2 }] });
    expect(again.err).toBeNull();
    expect(again.res?.accepted).toBe(1);
  });

  it('passes a reporter on to logs cut at 256 characters: a gRPC request\'s is not bounded by a schema', async () => {
    const { err } = await call({ reporter: 'r'.repeat(1_000_000), samples: [{ cluster: 'web', endpoint: '10.0.0.1:8080', cpu: 2 }] });
    expect(err).toBeNull();
    expect(batches.at(-1)).toMatchObject({ transport: 'grpc', rejected: 1, reporter: `${'r'.repeat(256)}…` });
  });
});
