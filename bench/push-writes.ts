/**
 * CPU of one push's framed writes through FramedWriter (src/xds/framed-writes.ts) over real HTTP/2,
 * as server.ts drives it: N grpc-js server calls, each with its own client session (node:http2, in
 * this process), one shared framed response written to every call per round, as a fan-out does.
 * Printed (median of the rounds): the write loop's CPU and wall time, the CPU until every write's
 * completion ran (the sessions flushed), until every client received its response (the clients'
 * receive is in this process too: equal for both builds, so compare the differences), and the GC
 * pauses from the loop until every client received.
 *
 *   npx tsx bench/push-writes.ts [--streams 3000] [--rounds 9] [--root DIR]
 *
 * --root: the checkout whose src/xds/framed-writes.ts is measured (default this one), e.g. a base
 * checkout for a before/after; run both alternately. Run with node's --max-semi-space-size=4 as
 * fulcrum runs (NODE_OPTIONS). Adapted from fan7's bench/native-writes.ts. Not a test.
 */
import * as grpc from '@grpc/grpc-js';
import http2 from 'node:http2';
import { resolve } from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { rawBidiMethod } from '../test/support/raw-bidi-method.js';
import { helpIfAsked } from './help.js';

helpIfAsked(import.meta.url);
const { values } = parseArgs({
  options: { streams: { type: 'string', default: '3000' }, rounds: { type: 'string', default: '9' }, root: { type: 'string', default: '' } },
});
const N = Number(values.streams);
const ROUNDS = Number(values.rounds);
const root = values.root === '' ? resolve(import.meta.dirname, '..') : resolve(values.root);

/** Either shape: a completion per writer (this checkout) or a callback per write (before). */
interface Writer {
  write(parts: readonly Uint8Array[], bytesOrDone: number | (() => void)): void;
}
const mod = (await import(resolve(root, 'src/xds/framed-writes.ts'))) as {
  FramedWriter: new (call: unknown, max: number, done?: (bytes: number) => void) => Writer;
  framedMessage: (build: (out: Uint8Array, at: number) => void, bytes: number) => Uint8Array;
};
const perWriter = mod.FramedWriter.length >= 3;

const METHOD = rawBidiMethod('/bench.Framed/Chat');

let completed = 0;
let completedCpu = 0;
let queuedBytes = 0;
const cpu = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
/** What server.ts does on a completion: the queue accounting. */
const flushed = (bytes: number): void => {
  queuedBytes -= bytes;
  if (++completed === N) completedCpu = cpu();
};

const writers: Writer[] = [];
let allOpen: () => void = () => undefined;
const opened = new Promise<void>((r) => (allOpen = r));
const server = new grpc.Server({ 'grpc.max_concurrent_streams': 100 });
server.addService({ Chat: METHOD }, {
  Chat: (call: grpc.ServerDuplexStream<Buffer, readonly Uint8Array[]>) => {
    call.once('data', () => {
      writers.push(new mod.FramedWriter(call, 4 << 20, flushed));
      if (writers.length === N) allOpen();
    });
  },
});
const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));

let received = 0;
const sessions: http2.ClientHttp2Session[] = [];
const hello = Buffer.from([0, 0, 0, 0, 5, ...Buffer.from('hello')]);
for (let i = 0; i < N; i++) {
  const s = http2.connect(`http://127.0.0.1:${port}`);
  const req = s.request({ ':method': 'POST', ':path': METHOD.path, 'content-type': 'application/grpc', te: 'trailers' }, { endStream: false });
  req.on('data', (chunk: Buffer) => (received += chunk.length));
  // The teardown resets what is still open.
  req.on('error', () => undefined);
  s.on('error', () => undefined);
  req.write(hello);
  sessions.push(s);
  if (i % 200 === 199) await new Promise((r) => setImmediate(r));
}
await opened;

let gcMs = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcMs += e.duration;
}).observe({ entryTypes: ['gc'] });

const body = Buffer.alloc(820, 7);
const rows: { loopCpu: number; loopMs: number; writtenCpu: number; receivedCpu: number; gcMs: number }[] = [];
for (let r = 0; r < ROUNDS; r++) {
  await new Promise((res) => setTimeout(res, 300));
  const message = mod.framedMessage((out, at) => out.set(body, at), body.length);
  const bytes = message.length;
  const want = received + N * (bytes + 5);
  completed = 0;
  const gc0 = gcMs;
  const t0 = performance.now();
  const c0 = cpu();
  for (const w of writers) {
    queuedBytes += bytes;
    // As server.ts writes: before, a closure per write carrying its byte count.
    if (perWriter) w.write([message], bytes);
    else w.write([message], () => flushed(bytes));
  }
  const loopCpu = cpu() - c0;
  const loopMs = performance.now() - t0;
  while (received < want || completed < N) await new Promise((res) => setImmediate(res));
  rows.push({ loopCpu, loopMs, writtenCpu: completedCpu - c0, receivedCpu: cpu() - c0, gcMs: gcMs - gc0 });
}
const median = (xs: number[]): number => Math.round([...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN);
process.stdout.write(
  `${JSON.stringify({ bench: 'push-writes', root, perWriter, streams: N, rounds: ROUNDS, loopCpuMs: median(rows.map((x) => x.loopCpu)), loopMs: median(rows.map((x) => x.loopMs)), cpuToWrittenMs: median(rows.map((x) => x.writtenCpu)), cpuToReceivedMs: median(rows.map((x) => x.receivedCpu)), gcMs: median(rows.map((x) => x.gcMs)), queuedBytesAfter: queuedBytes })}\n`,
);
for (const s of sessions) s.destroy();
server.forceShutdown();
