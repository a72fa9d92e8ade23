/**
 * The review's one-connection attack on a real fulcrum under the shipped heap cap
 * (--max-old-space-size=384): one client, ONE HTTP/2 connection from 127.0.0.2, streams opened
 * one after another, each inside every per-request and per-stream limit. SotW: an EDS request
 * naming 2,000 distinct names of 1,000 bytes (2 MB, ~4.3 MiB of heap per stream; 100 streams
 * killed the process). Delta: initial_resource_versions of 2,000 such names with 900-byte versions
 * on EDS and RDS. The per-peer subscription budget refuses the extra streams, and the process lives.
 */
import type http2 from 'node:http2';
import { expect, test } from 'vitest';
import { cappedFulcrumForFile, type FulcrumProcess } from '../support/fulcrum-process.js';
import { ADS_PATH, callEnd, connectH2, discoveryRequest, grpcFrame, openCall, type CallEnd } from '../support/raw-grpc.js';
import { ADS_DELTA, encodeDeltaDiscoveryRequest } from '../support/xds-client.js';
import { scaled, waitFor } from '../support/wait.js';

const EDS = 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment';
const RDS = 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration';
const MiB = 1024 * 1024;
const RESOURCE_EXHAUSTED = 8;

const fulcrum = cappedFulcrumForFile('fulcrum-budget-');

const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Opens `count` streams on one connection (`write` sends each one's requests) while the process
 * lives, waits until `done` holds for the calls ended so far, and checks the process is still up
 * and under the pod's memory limit throughout. From stream `endsFrom` on, each call must end before
 * the next opens: a loaded server reads the connection slower than the client writes, and Node's
 * HTTP/2 session memory cap (10 MB unread) then resets new streams (ENHANCE_YOUR_CALM) before
 * the budget under test ever sees them.
 */
async function attack(
  f: FulcrumProcess,
  path: string,
  count: number,
  write: (st: http2.ClientHttp2Stream, i: number) => Promise<void>,
  done: (ended: readonly CallEnd[]) => boolean,
  endsFrom = count,
): Promise<CallEnd[]> {
  const s = await connectH2(f.xdsPort, '127.0.0.2');
  const ended: CallEnd[] = [];
  let peak = 0;
  try {
    for (let i = 0; i < count && f.proc.exit === undefined; i++) {
      const st = openCall(s, path);
      let ends = false;
      void callEnd(st).then((e) => ((ends = true), ended.push(e)));
      await write(st, i);
      if (i >= endsFrom) await waitFor(() => ends || f.proc.exit !== undefined, { what: `call ${i} to end`, timeoutMs: 60_000 });
      peak = Math.max(peak, f.rss());
    }
    await waitFor(
      (ctx) => {
        ctx.note(ended.map((e) => `${e.status}: ${e.message.slice(0, 50)}`));
        return f.proc.exit !== undefined || done(ended);
      },
      { what: 'the calls to end', timeoutMs: 120_000 },
    );
    await pause(1_000);
    peak = Math.max(peak, f.rss());
    expect(f.proc.exit, f.proc.tail().slice(-1500)).toBeUndefined();
    // The shipped pod's memory limit: above it Kubernetes kills the process.
    expect(peak).toBeLessThan(512 * MiB);
    return ended;
  } finally {
    s.destroy();
  }
}

const refusedBy = (ends: readonly CallEnd[], limit: string): CallEnd[] => ends.filter((e) => e.status === RESOURCE_EXHAUSTED && e.message.includes(limit));

test('SotW: one connection of 2 MB EDS subscriptions is refused past the per-peer budget; fulcrum lives', async () => {
  const f = fulcrum();
  const PER_PEER = 'server.xds.limits.maxSubscriptionNameBytesPerPeer (8388608)';
  const subscribe = async (st: http2.ClientHttp2Stream, i: number): Promise<void> => {
    st.on('data', () => undefined);
    const names = Array.from({ length: 2_000 }, (_, j) => `s${i}-n${j}-`.padEnd(1_000, 'x'));
    st.write(grpcFrame(discoveryRequest(`node-${i}`, EDS, names)));
    await pause(150);
  };
  // 8 MiB per peer holds 4 of these (2,000 × (1,000 + 32) = 2,064,000 bytes each); the other 96 are refused.
  const ended = await attack(f, ADS_PATH, 100, subscribe, (e) => e.length >= 96, 4);
  const seen = ended.map((e) => `${e.status}/${e.rstCode}: ${e.message.slice(0, 70)}`);
  expect(refusedBy(ended, PER_PEER).length, JSON.stringify(seen)).toBe(96);
}, scaled(300_000));

test('Delta: one connection reporting 2,000 held EDS and RDS names per stream stays up', async () => {
  const f = fulcrum();
  const report = async (st: http2.ClientHttp2Stream, i: number): Promise<void> => {
    st.on('data', () => undefined);
    for (const [t, type_url] of [EDS, RDS].entries()) {
      const initial = Object.fromEntries(Array.from({ length: 2_000 }, (_, j) => [`s${i}-t${t}-n${j}-`.padEnd(1_000, 'x'), `v${j}-`.padEnd(900, 'y')]));
      st.write(grpcFrame(encodeDeltaDiscoveryRequest({ ...(t === 0 ? { node: { id: `d-${i}`, cluster: 'x' } } : {}), type_url, initial_resource_versions: initial })));
      await pause(250);
    }
  };
  // Versions over 256 bytes are not kept, and names the stream does not subscribe to are dropped:
  // nothing of these reports stays, so nothing is refused either.
  const ended = await attack(f, ADS_DELTA, 60, report, () => true);
  expect(ended.filter((e) => e.status !== undefined)).toEqual([]);
}, scaled(300_000));
