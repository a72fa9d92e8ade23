import * as grpc from '@grpc/grpc-js';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  decodeHealthCheckRequest,
  encodeHealthCheckResponse,
  GRPC_HEALTH_CHECK_PATH,
  Prober,
  runProbe,
  type ProbeOutcome,
  type Timers,
} from '../../src/signals/prober.js';
import { SignalStore } from '../../src/signals/signal-store.js';
import { freePort } from '../support/ports.js';
import { waitFor } from '../support/wait.js';
import { bindLocal } from '../support/local-grpc.js';

const listen = async (server: net.Server): Promise<number> => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return (server.address() as AddressInfo).port;
};

describe('probes against real local servers', () => {
  let httpServer: http.Server;
  let httpPort: number;
  let hangServer: net.Server;
  let hangPort: number;
  let grpcServer: grpc.Server;
  let grpcPort: number;
  let refusedPort: number;
  const held: net.Socket[] = [];

  beforeAll(async () => {
    httpServer = http.createServer((req, res) => {
      if (req.url === '/healthz') res.end('ok');
      else if (req.url === '/slow') setTimeout(() => res.end('late'), 2_000).unref();
      else {
        res.statusCode = 503;
        res.end('down');
      }
    });
    httpPort = await listen(httpServer);
    // Accepts connections and never answers: HTTP and gRPC probes time out, TCP connects.
    hangServer = net.createServer((s) => held.push(s));
    hangPort = await listen(hangServer);
    refusedPort = await freePort();

    grpcServer = new grpc.Server();
    const statuses: Record<string, number> = { '': 1, api: 2 };
    grpcServer.addService(
      {
        Check: {
          path: GRPC_HEALTH_CHECK_PATH,
          requestStream: false,
          responseStream: false,
          requestSerialize: () => Buffer.alloc(0),
          // An object: grpc-js treats a falsy request ('' for the whole server) as no message at all.
          requestDeserialize: (b: Buffer) => ({ service: decodeHealthCheckRequest(b) }),
          responseSerialize: encodeHealthCheckResponse,
          responseDeserialize: () => 0,
        },
      },
      {
        Check: (call: grpc.ServerUnaryCall<{ service: string }, number>, cb: grpc.sendUnaryData<number>) => {
          const status = statuses[call.request.service];
          if (status === undefined) cb({ code: grpc.status.NOT_FOUND, details: 'unknown service' });
          else cb(null, status);
        },
      },
    );
    grpcPort = await bindLocal(grpcServer);
  });

  afterAll(async () => {
    for (const s of held) s.destroy();
    await new Promise<void>((r) => hangServer.close(() => r()));
    httpServer.closeAllConnections();
    await new Promise<void>((r) => httpServer.close(() => r()));
    grpcServer.forceShutdown();
  });

  const expectOk = (o: ProbeOutcome) => {
    expect(o.ok, o.error).toBe(true);
    expect(o.latencyMs).toBeGreaterThanOrEqual(0);
    expect(o.latencyMs).toBeLessThan(1_000);
  };

  it('HTTP: 2xx is healthy, 503 is not, a silent server times out, a closed port refuses', async () => {
    expectOk(await runProbe({ kind: 'http', path: '/healthz' }, '127.0.0.1', httpPort, 1_000));
    expect(await runProbe({ kind: 'http', path: '/' }, '127.0.0.1', httpPort, 1_000)).toEqual({ ok: false, error: 'HTTP 503' });
    expect(await runProbe({ kind: 'http', path: '/slow' }, '127.0.0.1', httpPort, 200)).toEqual({ ok: false, error: 'timeout after 200 ms' });
    expect(await runProbe({ kind: 'http' }, '127.0.0.1', hangPort, 200)).toEqual({ ok: false, error: 'timeout after 200 ms' });
    expect(await runProbe({ kind: 'http' }, '127.0.0.1', refusedPort, 1_000)).toEqual({ ok: false, error: 'connection refused' });
  });

  it('TCP: connect is healthy, a closed port refuses', async () => {
    expectOk(await runProbe({ kind: 'tcp' }, '127.0.0.1', hangPort, 1_000));
    expect(await runProbe({ kind: 'tcp' }, '127.0.0.1', refusedPort, 1_000)).toEqual({ ok: false, error: 'connection refused' });
  });

  it('gRPC health: SERVING is healthy; NOT_SERVING, unknown service, silence and refusal are not', async () => {
    expectOk(await runProbe({ kind: 'grpc' }, '127.0.0.1', grpcPort, 2_000));
    expect(await runProbe({ kind: 'grpc', service: 'api' }, '127.0.0.1', grpcPort, 2_000)).toEqual({ ok: false, error: 'NOT_SERVING' });
    const unknown = await runProbe({ kind: 'grpc', service: 'nope' }, '127.0.0.1', grpcPort, 2_000);
    expect(unknown.ok).toBe(false);
    expect(unknown.error).toMatch(/NOT_FOUND/);
    expect(await runProbe({ kind: 'grpc' }, '127.0.0.1', hangPort, 300)).toMatchObject({ ok: false });
    const refused = await runProbe({ kind: 'grpc' }, '127.0.0.1', refusedPort, 2_000);
    expect(refused.ok).toBe(false);
    expect(refused.error).toMatch(/UNAVAILABLE/);
  });

  it('a running Prober records real results in the SignalStore', async () => {
    const store = new SignalStore();
    const prober = new Prober({ store, intervalMs: 50, timeoutMs: 200 });
    prober.setCluster('web', { spec: { kind: 'http', path: '/healthz' } }, [{ address: '127.0.0.1', port: httpPort }]);
    prober.setCluster('db', { spec: { kind: 'tcp' } }, [{ address: '127.0.0.1', port: refusedPort }]);
    prober.start();
    try {
      const healthy = await waitFor(() => store.probes('web', `127.0.0.1:${httpPort}`).length >= 2 && store.latestProbe('web', `127.0.0.1:${httpPort}`), { what: 'two web probes' });
      expect(healthy.ok).toBe(true);
      expect(healthy.latencyMs).toBeGreaterThanOrEqual(0);
      const refused = await waitFor(() => store.latestProbe('db', `127.0.0.1:${refusedPort}`), { what: 'a db probe' });
      expect(refused).toMatchObject({ ok: false, error: 'connection refused' });
    } finally {
      prober.stop();
    }
  });
});

describe('Prober scheduling (injected timers)', () => {
  class FakeTimers implements Timers {
    now = 0;
    private next = 1;
    readonly pending = new Map<number, { at: number; fn: () => void }>();
    setTimeout(fn: () => void, ms: number): unknown {
      const id = this.next++;
      this.pending.set(id, { at: this.now + ms, fn });
      return id;
    }
    clearTimeout(h: unknown): void {
      this.pending.delete(h as number);
    }
    /** Fires every timer due by `now + ms`, in order, letting probes settle in between. */
    async advance(ms: number): Promise<void> {
      const until = this.now + ms;
      for (;;) {
        const due = [...this.pending.entries()].filter(([, t]) => t.at <= until).sort((a, b) => a[1].at - b[1].at)[0];
        if (!due) break;
        this.pending.delete(due[0]);
        this.now = due[1].at;
        due[1].fn();
        for (let i = 0; i < 5; i++) await Promise.resolve();
      }
      this.now = until;
    }
  }

  function setup(outcome: () => ProbeOutcome) {
    const timers = new FakeTimers();
    const store = new SignalStore({ now: () => timers.now });
    const calls: string[] = [];
    let r = 0;
    const randoms = [0.5, 0, 1]; // cycles
    const prober = new Prober({
      store,
      timers,
      intervalMs: 1000,
      jitter: 0.2,
      random: () => randoms[r++ % randoms.length] ?? 0.5,
      probe: async (_spec, address, port) => {
        calls.push(`${address}:${port}@${timers.now}`);
        return outcome();
      },
    });
    return { timers, store, calls, prober };
  }

  it('spreads first probes over the interval, then jitters each interval', async () => {
    const { timers, calls, prober } = setup(() => ({ ok: true, latencyMs: 1 }));
    prober.setCluster('web', { spec: { kind: 'tcp' } }, [{ address: '10.0.0.1', port: 1 }]);
    prober.start();
    await timers.advance(3_000);
    // first at 0.5 × 1000; then intervals × (1 + 0.2 × (2r − 1)) with r = 0, 1, 0.5, ...
    expect(calls).toEqual(['10.0.0.1:1@500', '10.0.0.1:1@1300', '10.0.0.1:1@2500']);
    prober.stop();
    await timers.advance(10_000);
    expect(calls).toHaveLength(3);
  });

  it('records results with the store clock, stops probing removed endpoints, applies new configs', async () => {
    const { timers, store, calls, prober } = setup(() => ({ ok: false, error: 'timeout after 1000 ms' }));
    prober.setCluster('web', { spec: { kind: 'tcp' } }, [
      { address: '10.0.0.1', port: 1 },
      { address: '10.0.0.2', port: 1 },
    ]);
    prober.start();
    await timers.advance(1_000);
    expect(store.latestProbe('web', '10.0.0.1:1')).toEqual({ ok: false, at: 500, error: 'timeout after 1000 ms' });
    prober.setCluster('web', { spec: { kind: 'tcp' }, intervalMs: 100 }, [{ address: '10.0.0.2', port: 1 }]);
    expect(prober.targetCount).toBe(1);
    calls.length = 0;
    await timers.advance(2_000);
    expect(calls.every((c) => c.startsWith('10.0.0.2:1'))).toBe(true);
    expect(calls.length).toBeGreaterThan(5);
    prober.setCluster('web', undefined, []);
    expect(prober.targetCount).toBe(0);
    prober.stop();
  });
});
