import http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { poissonLoad, seededRandom, type RequestResult } from '../../examples/backends/poisson-load.js';
import { coldFactor, QueueingBackend } from '../../examples/backends/queueing-backend.js';
import { waitFor } from '../support/wait.js';

/** The benchmark backend queues for real, and its failure switches do what they say. Not a benchmark. */

let backend: QueueingBackend | undefined;
afterEach(async () => {
  await backend?.close();
  backend = undefined;
});

async function start(workers: number, meanServiceMs: number, queueLimit = 20): Promise<QueueingBackend> {
  backend = new QueueingBackend({ workers, meanServiceMs, queueLimit, name: 'b' });
  await backend.listen();
  return backend;
}

function get(b: QueueingBackend): Promise<{ status: number; headers: http.IncomingHttpHeaders; ms: number } | { error: string }> {
  const t = performance.now();
  return new Promise((resolve) => {
    const req = http.get(`http://${b.key}/`, { agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, ms: performance.now() - t }));
    });
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
  });
}

/** `n` requests at once; their results. */
const burst = (b: QueueingBackend, n: number): ReturnType<typeof get>[] => Array.from({ length: n }, () => get(b));

const mean = (xs: number[]): number => xs.reduce((a, c) => a + c, 0) / xs.length;

describe('queueing backend', () => {
  it('queues: latency grows with concurrent load, a full queue answers 503, utilization is busy time (≤ 1)', async () => {
    const b = await start(2, 200);
    const alone = await get(b);
    if ('error' in alone) throw new Error(alone.error);
    expect(alone.status).toBe(200);
    expect(alone.headers['x-backend']).toBe('b');
    expect(alone.headers['endpoint-load-metrics']).toMatch(/^TEXT cpu_utilization=[01]\.\d{4}, rps_fractional=\d+\.\d{2}, eps=\d+\.\d{2}, named_metrics\.latency_ms=\d+\.\d$/);

    // 2 workers and 20 waiting places: of 40 sent at once, about 22 are served in turn (more if
    // some finish while the burst still arrives: ~100 ms apart here), the rest refused with 503, no ORCA.
    const pending = Promise.all(burst(b, 40));
    // Utilization is read while the queue still holds work, so both workers were busy for the
    // whole window; read after the burst drained, the tail (one worker idle) makes it a coin toss.
    await waitFor(() => b.served.ok >= 8, { what: '8 requests served', timeoutMs: 30_000, intervalMs: 20 });
    const u = b.utilization(500);
    const results = await pending;
    const ok = results.filter((r): r is { status: number; headers: http.IncomingHttpHeaders; ms: number } => 'status' in r && r.status === 200);
    const full = results.filter((r) => 'status' in r && r.status === 503);
    expect(ok.length + full.length).toBe(40);
    expect(ok.length).toBeGreaterThanOrEqual(22);
    expect(full.length).toBeGreaterThanOrEqual(1);
    expect(b.served.rejected).toBe(full.length);
    expect(full.every((r) => 'headers' in r && r.headers['endpoint-load-metrics'] === undefined)).toBe(true);
    // Served in turn: the last of them waited for ~20 others on 2 workers (~2 s on average).
    expect(Math.max(...ok.map((r) => r.ms))).toBeGreaterThan(600);
    expect(u).toBeGreaterThan(0.5);
    expect(u).toBeLessThanOrEqual(1);
  });

  it('under Poisson load, mean latency and utilization rise with the offered rate', async () => {
    const b = await start(4, 20, 10_000); // 200 rps of capacity, a queue that never fills
    const run = async (rps: number): Promise<{ latency: number; util: number }> => {
      const results: RequestResult[] = [];
      const load = poissonLoad({ url: `http://${b.key}/`, rps, onResult: (r) => results.push(r) });
      const before = b.busyTotals();
      await waitFor(() => results.length >= 300, { what: `300 responses at ${rps} rps`, timeoutMs: 30_000, intervalMs: 50 });
      const after = b.busyTotals();
      await load.stop();
      expect(results.every((r) => r.outcome === 'ok')).toBe(true);
      return { latency: mean(results.map((r) => r.ms)), util: (after.busyMs - before.busyMs) / (after.capacityMs - before.capacityMs) };
    };
    // M/M/4 at 20 ms: ~20 ms at 40 rps, ~100 ms at 190 rps (ρ 0.95), a gap no loaded machine hides.
    const low = await run(40);
    const high = await run(190);
    expect(high.util).toBeGreaterThan(low.util);
    expect(high.util).toBeLessThanOrEqual(1);
    expect(high.latency).toBeGreaterThan(low.latency);
  });

  it('fast-fail answers 503 at once without worker time; a slow dependency adds latency, not busy time', async () => {
    const b = await start(1, 10);
    b.fastFail = 1;
    const failed = await Promise.all(burst(b, 10));
    expect(failed.every((r) => 'status' in r && r.status === 503)).toBe(true);
    expect(b.served.fastFailed).toBe(10);
    expect(b.busyTotals().busyMs).toBe(0);

    b.fastFail = 0;
    b.slowFactor = 11; // + 100 ms of dependency wait per request, on a 10 ms mean service time
    const before = b.busyTotals().busyMs;
    const slow = await get(b);
    if ('error' in slow) throw new Error(slow.error);
    expect(slow.status).toBe(200);
    expect(slow.ms).toBeGreaterThanOrEqual(99);
    // The CPU part alone is exponential with a 10 ms mean: far below the 100 ms the request took.
    expect(b.busyTotals().busyMs - before).toBeLessThan(slow.ms - 90);
  });

  it('capacity change, death and revival', async () => {
    const b = await start(4, 10);
    expect(b.capacityRps).toBe(400);
    b.setWorkers(2);
    expect(b.capacityRps).toBe(200);
    const port = b.port;
    await b.kill();
    const dead = await get(b);
    expect(dead).toEqual({ error: 'ECONNREFUSED' });
    await b.revive();
    expect(b.port).toBe(port);
    const back = await get(b);
    expect('status' in back && back.status).toBe(200);
  });

  it('hang: a black hole accepts and never answers, those in service included; ended, it drops them and answers again', async () => {
    const b = await start(2, 20);
    // A slow dependency keeps it open for about a second: long enough to be seen in flight.
    b.slowFactor = 50;
    const inService = get(b);
    await waitFor(() => b.inFlight === 1, { what: 'one request in service', timeoutMs: 10_000, intervalMs: 5 });
    b.setHung(true);
    const held = get(b);
    // The one in service finished its work and is held as well: nothing is answered.
    await waitFor(() => b.holding === 2, { what: 'both requests held', timeoutMs: 10_000, intervalMs: 5 });
    expect(b.inFlight).toBe(2);
    expect(b.served.ok).toBe(0);
    b.setHung(false);
    b.slowFactor = 1;
    expect(await inService).toEqual({ error: 'ECONNRESET' });
    expect(await held).toEqual({ error: 'ECONNRESET' });
    const back = await get(b);
    expect('status' in back && back.status).toBe(200);
  });

  it('cold start: service times start factor × longer and ease linearly to normal; off by default', async () => {
    const cold = { factor: 5, easeMs: 10_000 };
    expect(coldFactor(undefined, 0)).toBe(1);
    expect(coldFactor(cold, 0)).toBe(5);
    expect(coldFactor(cold, -1)).toBe(5);
    expect(coldFactor(cold, 2_500)).toBe(4);
    expect(coldFactor(cold, 5_000)).toBe(3);
    expect(coldFactor(cold, 10_000)).toBe(1);
    expect(coldFactor(cold, 60_000)).toBe(1);
    expect(() => new QueueingBackend({ workers: 1, meanServiceMs: 10, coldStart: { factor: 0.5, easeMs: 1000 } })).toThrow(RangeError);

    // The same seeded service draws, one request at a time: the cold backend's busy time (virtual,
    // so a loaded machine's HTTP overhead is not in it) is ~5× the warm one's within the first
    // second of a 60 s easing (factor 4.9+).
    const busyOf = async (coldStart?: typeof cold): Promise<number> => {
      backend = new QueueingBackend({ workers: 1, meanServiceMs: 20, name: 'b', random: seededRandom(3), ...(coldStart ? { coldStart } : {}) });
      await backend.listen();
      for (let i = 0; i < 10; i++) await get(backend);
      const busy = backend.busyTotals().busyMs;
      await backend.close();
      backend = undefined;
      return busy;
    };
    const warm = await busyOf();
    const slow = await busyOf({ factor: 5, easeMs: 60_000 });
    expect(slow / warm).toBeGreaterThan(4);
    expect(slow / warm).toBeLessThanOrEqual(5);
  });
});
