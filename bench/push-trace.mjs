/* global process, setInterval */
/**
 * Loaded into a fulcrum process with `--import <abs path>/bench/push-trace.mjs` when FULCRUM_PUSH_TRACE
 * names a directory: records, with wall-clock times (ms since the epoch, sub-ms), what a slow
 * push round can be told apart by, and writes them as JSON lines to DIR/trace-PID.jsonl:
 *
 *   {"k":"req","t":…,"m":"PATCH","u":"/v1/…"}   an admin request arrived (http.server.request.start)
 *   {"k":"res","t":…}                           its response finished (http.server.response.finish)
 *   {"k":"h2w","t":…,"n":BYTES,"d":ms}          a write on an HTTP/2 server stream (an xDS response),
 *                                               d = until its callback (bytes handed to the kernel)
 *   {"k":"gc","t":…,"d":ms,"kind":N}            a GC pause (PerformanceObserver; kind 1 minor, 4 major,
 *                                               8 incremental, 16 weak callbacks)
 *   {"k":"clock","t":…,"hr":µs}                 the monotonic clock (process.hrtime, CPU profiles' base) at t
 *   {"k":"stall","t":…,"d":ms}                  the event loop did not run a 2 ms timer for d ms (> 6)
 *   {"k":"fsync","t":…,"d":ms}                  an fs.fdatasync/fsync (the store's WAL sync): d = until its callback
 *
 * Every event also carries the main thread's cumulative CPU time `c` and run-queue wait `w` (ms,
 * /proc/thread-self/schedstat): over a slow stretch, CPU means our code ran, run-queue wait means
 * the machine had no core for it, and neither means it was blocked (a syscall, a lock).
 *
 * A bench aid only (bench/sotw-rounds.ts reads it): nothing in src/ depends on it, and without
 * the variable it does nothing.
 */
import dc from 'node:diagnostics_channel';
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import path from 'node:path';
import { performance, PerformanceObserver } from 'node:perf_hooks';
import { Duplex } from 'node:stream';

const dir = process.env.FULCRUM_PUSH_TRACE;
if (dir) {
  const origin = performance.timeOrigin;
  const now = () => origin + performance.now();
  const schedstat = '/proc/thread-self/schedstat';
  const sched = () => {
    try {
      const [cpu, wait] = fs.readFileSync(schedstat, 'utf8').split(' ');
      return { c: Number(cpu) / 1e6, w: Number(wait) / 1e6 };
    } catch {
      return {};
    }
  };
  const file = path.join(dir, `trace-${process.pid}.jsonl`);
  let lines = [];
  const rec = (o) => void lines.push(JSON.stringify({ ...o, ...sched() }));
  const flush = () => {
    if (lines.length === 0) return;
    fs.appendFileSync(file, `${lines.join('\n')}\n`);
    lines = [];
  };
  // The monotonic clock V8's CPU profiles count in (µs), against the wall clock: a profile's
  // samples can then be cut to the rounds' window.
  rec({ k: 'clock', t: now(), hr: Number(process.hrtime.bigint() / 1000n) });
  setInterval(flush, 2000).unref();
  process.on('exit', flush);

  // `x`: V8's external memory (ArrayBuffers, Buffers; MiB) as each admin request starts and ends.
  const external = () => Math.round(process.memoryUsage().external / 1024 / 10.24) / 100;
  dc.subscribe('http.server.request.start', ({ request }) => rec({ k: 'req', t: now(), m: request.method, u: request.url, x: external() }));
  dc.subscribe('http.server.response.finish', () => rec({ k: 'res', t: now(), x: external() }));

  // Every write on an HTTP/2 server stream (a Duplex: its write is Duplex's own copy of Writable's): the xDS responses.
  const write = Duplex.prototype.write;
  Duplex.prototype.write = function tracedWrite(chunk, encoding, cb) {
    if (this.constructor && this.constructor.name === 'ServerHttp2Stream' && chunk && chunk.byteLength > 0) {
      const t = now();
      const n = chunk.byteLength;
      const done = typeof encoding === 'function' ? encoding : cb;
      const wrapped = (err) => {
        rec({ k: 'h2w', t, n, d: now() - t });
        if (typeof done === 'function') done(err);
      };
      return typeof encoding === 'function' ? write.call(this, chunk, wrapped) : write.call(this, chunk, encoding, wrapped);
    }
    return write.call(this, chunk, encoding, cb);
  };

  // The store's WAL fsyncs (wal-sync.ts imports fdatasync by name: syncBuiltinESMExports updates it).
  for (const name of ['fdatasync', 'fsync']) {
    const original = fs[name];
    fs[name] = function tracedSync(fd, cb) {
      const t = now();
      return original.call(fs, fd, (err) => {
        rec({ k: 'fsync', t, d: now() - t });
        cb(err);
      });
    };
  }
  syncBuiltinESMExports();

  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) rec({ k: 'gc', t: origin + e.startTime, d: e.duration, kind: e.detail ? e.detail.kind : e.kind });
  }).observe({ entryTypes: ['gc'] });

  // The stall's start carries c/w as they were then (so a stall's CPU and wait are the differences).
  let last = performance.now();
  let lastSched = sched();
  setInterval(() => {
    const t = performance.now();
    const s = sched();
    if (t - last > 8) lines.push(JSON.stringify({ k: 'stall', t: origin + last, d: t - last - 2, ...lastSched, c2: s.c, w2: s.w }));
    last = t;
    lastSched = s;
  }, 2).unref();
}
