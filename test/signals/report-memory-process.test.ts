/**
 * Reports a hostile (or broken) reporter can send within every size limit, against a real fulcrum
 * under the shipped heap cap (--max-old-space-size=384, a 512 MiB pod): a 4 MiB gRPC
 * ReportRequest of two million empty samples, a 4 MiB Envoy load report (LRS) of two million empty
 * cluster stats, and a 4 MiB JSON report whose samples carry half a million unknown fields. Two of either at once used to kill the process (heap out of memory);
 * each must be answered, and the process stay up and under the pod's limit.
 */
import { expect, test } from 'vitest';
import { cappedFulcrumForFile, type FulcrumProcess } from '../support/fulcrum-process.js';
import { callEnd, connectH2, grpcFrame, openCall, type CallEnd } from '../support/raw-grpc.js';
import { scaled } from '../support/wait.js';
import { field } from '../support/protobuf-bytes.js';
import { LRS_METHOD_PATH } from '../../src/signals/lrs-codec.js';
import { REPORT_METHOD_PATH } from '../../src/signals/report-grpc.js';

const MiB = 1024 * 1024;
const RESOURCE_EXHAUSTED = 8;
/** The default server.xds.limits.maxRequestBytes and the report route's body limit. */
const LIMIT = 4 * MiB;

const fulcrum = cappedFulcrumForFile('fulcrum-report-memory-');

/** Runs `attack` while sampling the process's RSS; then checks it lived and stayed under the pod's limit. */
async function survives<T>(f: FulcrumProcess, attack: () => Promise<T>): Promise<T> {
  let peak = 0;
  const sampler = setInterval(() => (peak = Math.max(peak, f.rss())), 50);
  try {
    return await attack();
  } finally {
    clearInterval(sampler);
    peak = Math.max(peak, f.rss());
    expect(f.proc.exit, f.proc.tail().slice(-1500)).toBeUndefined();
    expect(peak).toBeLessThan(512 * MiB);
  }
}

/** A message of empty entries of field `field` (length 0: two bytes each), just under the request limit. */
function emptyEntries(field: number): Buffer {
  const message = Buffer.alloc(LIMIT - 64);
  for (let i = 0; i < message.length; i += 2) message[i] = (field << 3) | 2;
  return message;
}

/** Sends `message` on two calls of `path` at once (one connection); how each ended. */
async function sendTwice(f: FulcrumProcess, path: string, message: Buffer): Promise<CallEnd[]> {
  const session = await connectH2(f.xdsPort);
  try {
    return await survives(f, () =>
      Promise.all(
        [0, 1].map(() => {
          const call = openCall(session, path);
          call.on('data', () => undefined);
          const end = callEnd(call);
          call.end(grpcFrame(message));
          return end;
        }),
      ),
    );
  } finally {
    session.destroy();
  }
}

test('two 4 MiB gRPC reports of empty samples are refused before they are decoded; fulcrum lives', async () => {
  const f = fulcrum();
  // ReportRequest.samples is field 1.
  for (const end of await sendTwice(f, REPORT_METHOD_PATH, emptyEntries(1))) {
    expect(end.status, JSON.stringify(end)).toBe(RESOURCE_EXHAUSTED);
    expect(end.message).toMatch(/at most 10000 samples \(got 2097120\)/);
  }
}, scaled(180_000));

test('two 4 MiB load reports of empty cluster stats are refused before they are decoded; fulcrum lives', async () => {
  const f = fulcrum();
  // LoadStatsRequest.cluster_stats is field 2.
  for (const end of await sendTwice(f, LRS_METHOD_PATH, emptyEntries(2))) {
    expect(end.status, JSON.stringify(end)).toBe(RESOURCE_EXHAUSTED);
    expect(end.message).toMatch(/a load report holds at most 250000 entries/);
  }
}, scaled(180_000));

test('two 4 MiB load reports of one endpoint whose metadata holds two million values are refused before they are decoded; fulcrum lives', async () => {
  const f = fulcrum();
  // Struct { fields: { a: Value { list_value (6): ListValue { values (1): [2M empty] } } } }
  const list = field(0x32, emptyEntries(1).subarray(0, LIMIT - 128));
  const struct = field(0x0a, Buffer.concat([field(0x0a, Buffer.from('a')), field(0x12, list)]));
  // cluster_stats (2) { upstream_locality_stats (2) { upstream_endpoint_stats (7) { metadata (6) } } }
  const report = field(0x12, field(0x12, field(0x3a, field(0x32, struct))));
  expect(report.length).toBeLessThan(LIMIT);
  for (const end of await sendTwice(f, LRS_METHOD_PATH, report)) {
    expect(end.status, JSON.stringify(end)).toBe(RESOURCE_EXHAUSTED);
    expect(end.message).toMatch(/a load report holds at most 250000 entries/);
  }
}, scaled(180_000));

test('two 4 MiB JSON reports of unknown fields are each answered with one rejection per sample; fulcrum lives', async () => {
  const f = fulcrum();
  const samples: string[] = [];
  let size = 0;
  let key = 0;
  // Samples of ~400 KB each, the body just under the limit.
  while (size < LIMIT - 600_000) {
    const fields = Array.from({ length: 50_000 }, () => `"x${(key++).toString(36)}":0`).join(',');
    samples.push(`{"cluster":"web","endpoint":"127.0.0.1:9001","cpu":0.5,${fields}}`);
    size += samples.at(-1)?.length ?? 0;
  }
  const body = `{"samples":[${samples.join(',')}]}`;
  expect(body.length).toBeLessThan(LIMIT);
  const post = async (): Promise<{ status: number; text: string }> => {
    const res = await fetch(`http://127.0.0.1:${f.adminPort}/v1/reports`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    return { status: res.status, text: await res.text() };
  };
  const answers = await survives(f, () => Promise.all([post(), post()]));
  for (const { status, text } of answers) {
    expect(status, text.slice(0, 300)).toBe(200);
    const { accepted, rejected } = JSON.parse(text) as { accepted: number; rejected: { index: number; field: string; reason: string }[] };
    expect(accepted).toBe(0);
    expect(rejected.map((r) => r.index)).toEqual(samples.map((_, i) => i));
    expect(rejected[0]?.reason).toMatch(/^unknown field and 49999 more unknown fields \(known: /);
  }
}, scaled(180_000));
