import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { LrsAggregator } from '../../src/signals/lrs-aggregator.js';
import { decodeLoadStatsResponse, durationMs, encodeLoadStatsRequest, LRS_METHOD_PATH, type WireLoadStatsRequest } from '../../src/signals/lrs-codec.js';
import { LRS_NODE_ID_MAX, lrsService, type LrsService } from '../../src/signals/lrs-service.js';
import { SignalStore } from '../../src/signals/signal-store.js';
import { serveLocal } from '../support/local-grpc.js';
import { scaled, waitFor } from '../support/wait.js';

const KEY = '10.0.0.1:8080';

function report(issued: number, inflight: number, intervalMs: number): WireLoadStatsRequest {
  return {
    cluster_stats: [
      {
        cluster_name: 'web',
        load_report_interval: { seconds: Math.floor(intervalMs / 1000), nanos: (intervalMs % 1000) * 1e6 },
        upstream_locality_stats: [{ upstream_endpoint_stats: [{ address: { socket_address: { address: '10.0.0.1', port_value: 8080 } }, total_issued_requests: issued, total_requests_in_progress: inflight }] }],
      },
    ],
  };
}

/** The LRS service on loopback, and one proxy's stream to it (node first, as Envoy). */
async function serve(options: { intervalMs: number; flushMs: number; store: SignalStore }): Promise<{ lrs: LrsService; send: (req: WireLoadStatsRequest) => void; reports: () => number; close: () => void }> {
  let reports = 0;
  const lrs = lrsService({
    store: options.store,
    reportingIntervalMs: options.intervalMs,
    flushMs: options.flushMs,
    onRequest: (req) => void (reports += req.cluster_stats?.length ? 1 : 0),
  });
  const loopback = await serveLocal(lrs);
  const { client } = loopback;
  const call = client.makeBidiStreamRequest(LRS_METHOD_PATH, (b: Buffer) => b, (b: Buffer) => b);
  call.on('error', () => undefined);
  call.on('data', () => undefined);
  call.write(encodeLoadStatsRequest({ node: { id: 'envoy-1', client_features: ['envoy.lrs.supports_send_all_clusters'] } }));
  await waitFor(() => lrs.streamCount === 1, { what: 'the LRS stream' });
  return {
    lrs,
    send: (req) => call.write(encodeLoadStatsRequest(req)),
    reports: () => reports,
    close: () => {
      lrs.close();
      loopback.close();
    },
  };
}

describe('LRS service: when samples reach the store', () => {
  let close: (() => void) | undefined;
  afterEach(() => close?.());

  it('stamps a sample when it is recorded, so an agent sample recorded meanwhile never makes it look older', async () => {
    const store = new SignalStore();
    // A flush delay long enough for the steps below on a loaded machine, well inside the share's
    // lifetime (3 intervals of 10 s).
    const s = await serve({ intervalMs: 10_000, flushMs: scaled(2_000), store });
    close = s.close;
    s.send(report(100, 1, 10_000));
    await waitFor(() => s.reports() === 1, { what: 'the report folded in' });
    const folded = store.now();
    await waitFor(() => store.now() > folded + 1, { what: 'a later millisecond' });
    // Within the flush delay, after the report came, an agent reports the same endpoint.
    const agentAt = store.now();
    expect(store.samples('web', KEY)).toEqual([]);
    store.record('web', KEY, { at: agentAt, latencyMs: 12, source: 'report' });
    const lrs = await waitFor(() => store.samples('web', KEY).find((x) => x.source === 'lrs'), { what: 'the LRS sample' });
    expect(lrs.rps).toBe(10);
    expect(lrs.at).toBeGreaterThanOrEqual(agentAt);
  });

  it("lets another replica's sums and a stalled proxy's share expire on time, with no report to trigger it", async () => {
    const store = new SignalStore();
    const intervalMs = 200;
    const s = await serve({ intervalMs, flushMs: 10, store });
    close = s.close;
    // Another replica's proxies: 30 requests per interval, 5 in flight.
    const other = new LrsAggregator();
    other.apply(1, report(30 * (intervalMs / 1000), 5, intervalMs), 0, intervalMs);
    const [partial] = other.partials(() => true);
    expect(s.lrs.applyPartial('other', partial!)).toBe(true);
    // This replica's proxy measured its last interval as 1 s: its share counts 3 s.
    s.send(report(10, 2, 1000));
    await waitFor(() => store.latest('web', KEY)?.rps === 40, { what: 'both parts summed' });
    // The proxy then stalls (its stream stays open) and the other replica sends nothing more:
    // its sums expire 3 intervals (0.6 s) after they came, before the proxy's share.
    await waitFor(() => store.latest('web', KEY)?.rps === 10, { what: "the other replica's sums expired" });
    expect(store.latest('web', KEY)?.inflight).toBe(2);
  });
});

describe('LRS service: what reaches the log', () => {
  it("cuts a proxy's node.id at LRS_NODE_ID_MAX characters in the stream's log lines", async () => {
    const lines: { msg: string; node?: unknown }[] = [];
    const log = { info: (o: { node?: unknown }, msg: string) => void lines.push({ ...o, msg }), warn: () => undefined, debug: () => undefined };
    const lrs = lrsService({ store: new SignalStore(), log: log as unknown as Pick<Logger, 'info' | 'warn' | 'debug'> });
    const loopback = await serveLocal(lrs);
    const { client } = loopback;
    try {
      const call = client.makeBidiStreamRequest(LRS_METHOD_PATH, (b: Buffer) => b, (b: Buffer) => b);
      call.on('error', () => undefined);
      call.on('data', () => undefined);
      call.write(encodeLoadStatsRequest({ node: { id: 'n'.repeat(1_000_000), client_features: ['envoy.lrs.supports_send_all_clusters'] } }));
      await waitFor(() => lines.some((l) => l.msg === 'LRS stream opened'), { what: 'the stream opened' });
      call.end();
      await waitFor(() => lines.some((l) => l.msg === 'LRS stream closed'), { what: 'the stream closed' });
      for (const line of lines) expect(line.node).toBe(`${'n'.repeat(LRS_NODE_ID_MAX)}…`);
    } finally {
      lrs.close();
      loopback.close();
    }
  });
});

describe('LRS service: a stream reporting faster than it was asked to', () => {
  /** The service on loopback on a clock the test moves, and a way to open proxies' streams to it. */
  async function paced(intervalMs: number): Promise<{ advance: (ms: number) => void; open: () => { send: (req: WireLoadStatsRequest) => void; status: Promise<grpc.StatusObject> }; refused: () => number; reports: () => number; warnings: () => unknown[]; close: () => void }> {
    let now = 1_000_000;
    let refused = 0;
    let reports = 0;
    const warnings: unknown[] = [];
    const log = { info: () => undefined, debug: () => undefined, warn: (fields: unknown) => void warnings.push(fields) };
    const lrs = lrsService({ store: new SignalStore({ now: () => now }), reportingIntervalMs: intervalMs, reportBurst: 5, onRefused: () => void refused++, onRequest: () => void reports++, log });
    const loopback = await serveLocal(lrs);
    const { client } = loopback;
    const open = (): { send: (req: WireLoadStatsRequest) => void; status: Promise<grpc.StatusObject> } => {
      const call = client.makeBidiStreamRequest(LRS_METHOD_PATH, (b: Buffer) => b, (b: Buffer) => b);
      call.on('error', () => undefined);
      call.on('data', () => undefined);
      const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
      return { send: (req) => call.write(encodeLoadStatsRequest(req)), status };
    };
    return {
      advance: (ms) => void (now += ms),
      open,
      refused: () => refused,
      reports: () => reports,
      warnings: () => warnings,
      close: () => {
        lrs.close();
        loopback.close();
      },
    };
  }

  /** An Envoy: its first request, then `n` reports, one per `intervalMs` of the test's clock, each read before the next. */
  async function envoyOnTime(s: Awaited<ReturnType<typeof paced>>, n: number, intervalMs: number): Promise<{ send: (req: WireLoadStatsRequest) => void }> {
    const envoy = s.open();
    envoy.send({ node: { id: 'envoy', client_features: ['envoy.lrs.supports_send_all_clusters'] } });
    for (let i = 1; i <= n; i++) {
      await waitFor(() => s.reports() === i, { what: `the Envoy's request ${i} read` });
      s.advance(intervalMs);
      envoy.send(report(10, 1, intervalMs));
    }
    await waitFor(() => s.reports() === n + 1, { what: `the Envoy's ${n + 1} requests read` });
    return envoy;
  }

  it('is ended with RESOURCE_EXHAUSTED past loadReportBurst reports ahead of the interval; one at the interval is served on', async () => {
    const s = await paced(2_000);
    try {
      const envoy = await envoyOnTime(s, 20, 2_000);
      // A client reporting as fast as it can: the first request and 4 more pass, the 6th ends it.
      const flood = s.open();
      flood.send({ node: { id: 'flood', client_features: ['envoy.lrs.supports_send_all_clusters'] } });
      for (let i = 0; i < 50; i++) flood.send(report(10, 1, 2_000));
      const ended = await flood.status;
      expect(ended.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expect(ended.details).toMatch(/load_reporting_interval \(2000 ms\).*loadReportBurst/);
      expect(s.refused()).toBe(1);
      expect(s.reports()).toBe(21 + 5);
      // The Envoy's stream was not touched: it reports on.
      s.advance(2_000);
      envoy.send(report(10, 1, 2_000));
      await waitFor(() => s.reports() === 27, { what: "the Envoy's next report" });
    } finally {
      s.close();
    }
  });

  it('serves on an Envoy whose reports, sent once per interval, are read together after fulcrum was held up', async () => {
    // 200 ms: an interval the config allows (loadReporting.intervalMs from 100). A 2 s stall (a
    // blocked loop, a network hiccup) puts 10 reports sent on time in the socket, read at once.
    const s = await paced(200);
    try {
      const envoy = await envoyOnTime(s, 3, 200);
      s.advance(2_000);
      for (let i = 0; i < 10; i++) envoy.send(report(10, 1, 200));
      await waitFor(() => s.reports() === 14 || s.refused() > 0, { what: 'the 10 reports queued behind the stall read, or the stream refused' });
      expect(s.refused()).toBe(0);
      expect(s.reports()).toBe(14);
      // Still open, and paced again: one more report at its interval is read.
      s.advance(200);
      envoy.send(report(10, 1, 200));
      await waitFor(() => s.reports() === 15, { what: "the Envoy's next report" });
    } finally {
      s.close();
    }
  });

  it('logs refused streams once a minute, however many a client reopens, and counts every one', async () => {
    const s = await paced(2_000);
    try {
      const flood = async (): Promise<void> => {
        const c = s.open();
        c.send({ node: { id: 'flood', client_features: ['envoy.lrs.supports_send_all_clusters'] } });
        for (let i = 0; i < 20; i++) c.send(report(10, 1, 2_000));
        expect((await c.status).code).toBe(grpc.status.RESOURCE_EXHAUSTED);
      };
      for (let i = 0; i < 5; i++) await flood();
      expect(s.refused()).toBe(5);
      expect(s.warnings()).toHaveLength(1);
      s.advance(60_000);
      await flood();
      expect(s.warnings()).toHaveLength(2);
      expect(s.warnings()[1]).toMatchObject({ suppressedBefore: 4 });
    } finally {
      s.close();
    }
  });
});

describe('LRS service: the interval asked follows the fleet\'s reports', () => {
  /** `n` endpoint entries of cluster web. */
  const entries = (n: number): WireLoadStatsRequest => ({
    cluster_stats: [
      {
        cluster_name: 'web',
        load_report_interval: { seconds: 1, nanos: 0 },
        upstream_locality_stats: [{ upstream_endpoint_stats: Array.from({ length: n }, (_, i) => ({ address: { socket_address: { address: '10.0.0.1', port_value: 1_000 + i } }, total_issued_requests: 1 })) }],
      },
    ],
  });

  /** A proxy's LRS stream: every interval it is asked, in order, and when each answer came. */
  const proxy = (client: grpc.Client, id: string) => {
    const call = client.makeBidiStreamRequest(LRS_METHOD_PATH, (b: Buffer) => b, (b: Buffer) => b);
    const asked: number[] = [];
    const at: number[] = [];
    call.on('error', () => undefined);
    call.on('data', (b: Buffer) => {
      asked.push(durationMs(decodeLoadStatsResponse(b).load_reporting_interval) ?? Number.NaN);
      at.push(Date.now());
    });
    call.write(encodeLoadStatsRequest({ node: { id, client_features: ['envoy.lrs.supports_send_all_clusters'] } }));
    return { asked, at, send: (req: WireLoadStatsRequest) => call.write(encodeLoadStatsRequest(req)), end: () => call.end() };
  };

  it('asks 1 s, stretches open streams toward 2 s as their reports grow, asks a new stream the stretched one, and shortens after the hold', async () => {
    let now = 1_000_000;
    const lrs = lrsService({ store: new SignalStore({ now: () => now }), reportingIntervalMs: 1_000, maxReportingIntervalMs: 2_000, reportEntriesPerSecond: 100 });
    const loopback = await serveLocal(lrs);
    const open = (id: string) => proxy(loopback.client, id);
    try {
      const a = open('a');
      await waitFor(() => a.asked.length === 1, { what: "a's first answer" });
      expect(a.asked).toEqual([1_000]);
      expect(lrs.intervalMs).toBe(1_000);
      // 150 entries a round at 100 a second: 1.5 s, asked once the stretch hold (5 s) has passed.
      a.send(entries(150));
      await waitFor(() => lrs.intervalMs === 1_500, { what: 'the target stretched' });
      now += 5_000;
      await waitFor(() => a.asked.length === 2, { what: 'a asked again' });
      expect(a.asked[1]).toBe(1_500);
      // A second proxy, before its first report, counts as the mean: 300 a round, past the longest.
      const b = open('b');
      await waitFor(() => b.asked.length === 1, { what: "b's first answer" });
      expect(b.asked).toEqual([2_000]);
      now += 5_000;
      await waitFor(() => a.asked.length === 3, { what: 'a asked the longest' });
      expect(a.asked[2]).toBe(2_000);
      // b leaves and a's reports shrink: 1 s again, asked only after the 30 s hold.
      b.end();
      a.send(entries(10));
      await waitFor(() => lrs.streamCount === 1 && lrs.intervalMs === 1_000, { what: 'the target back at 1 s' });
      now += 10_000;
      await new Promise((r) => setTimeout(r, 1_500)); // a check ran: nothing sent inside the hold
      expect(a.asked).toHaveLength(3);
      now += 20_000;
      await waitFor(() => a.asked.length === 4, { what: 'a asked 1 s again' });
      expect(a.asked[3]).toBe(1_000);
    } finally {
      lrs.close();
      loopback.close();
    }
  });

  it('re-asks at most retargetsPerCheck streams a check, the rest in the checks after', async () => {
    let now = 1_000_000;
    const lrs = lrsService({ store: new SignalStore({ now: () => now }), reportingIntervalMs: 1_000, maxReportingIntervalMs: 2_000, reportEntriesPerSecond: 10, retargetsPerCheck: 2 });
    const loopback = await serveLocal(lrs);
    try {
      const streams = ['a', 'b', 'c'].map((id) => proxy(loopback.client, id));
      await waitFor(() => streams.every((s) => s.asked.length === 1), { what: 'three first answers' });
      expect(streams.map((s) => s.asked[0])).toEqual([1_000, 1_000, 1_000]);
      // 3 streams of 20 entries at 10 a second: past the longest.
      for (const s of streams) s.send(entries(20));
      await waitFor(() => lrs.intervalMs === 2_000, { what: 'the target at 2 s' });
      now += 5_000;
      await waitFor(() => streams.every((s) => s.asked.length === 2), { what: 'all three re-asked' });
      for (const s of streams) expect(s.asked[1]).toBe(2_000);
      // Two in one check, the third in a later one (checks are a second apart).
      const at = streams.map((s) => s.at[1] as number).sort((x, y) => x - y);
      expect((at[1] as number) - (at[0] as number)).toBeLessThan(500);
      expect((at[2] as number) - (at[1] as number)).toBeGreaterThan(500);
    } finally {
      lrs.close();
      loopback.close();
    }
  });

  it('with reportingIntervalMs alone, asks that interval and never another', async () => {
    let now = 1_000_000;
    const lrs = lrsService({ store: new SignalStore({ now: () => now }), reportingIntervalMs: 2_000, reportEntriesPerSecond: 1 });
    const loopback = await serveLocal(lrs);
    try {
      const { asked, send } = proxy(loopback.client, 'fixed');
      await waitFor(() => asked.length === 1, { what: 'the first answer' });
      send(entries(500));
      await waitFor(() => lrs.intervalMs === 2_000 && lrs.streamCount === 1, { what: 'the report read' });
      now += 60_000;
      send(entries(500));
      await new Promise((r) => setTimeout(r, 1_500));
      expect(asked).toEqual([2_000]);
    } finally {
      lrs.close();
      loopback.close();
    }
  });
});
