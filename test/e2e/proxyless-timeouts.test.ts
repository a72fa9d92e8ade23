/**
 * A route's `timeoutMs` for proxyless gRPC (@grpc/grpc-js-xds, in a child process). gRPC takes a
 * call's deadline from the route's max_stream_duration (gRFC A31), not from RouteAction.timeout,
 * which Envoy reads: routes of an api_listener must carry it there, or a slow backend holds the
 * caller for as long as the caller's own deadline allows.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startProxylessRig, type ProxylessRig } from '../support/proxyless-rig.js';
import { tally } from '../support/grpc-xds.js';
import { scaled, waitFor } from '../support/wait.js';

/** deadline_exceeded */
const DEADLINE_EXCEEDED = 4;
const ROUTE_TIMEOUT_MS = 500;
/** Far past the route's timeout, far inside the call's own deadline. */
const SLOW_MS = 8_000;

let rig: ProxylessRig;

beforeAll(async () => {
  rig = await startProxylessRig({
    name: 'proxyless-timeouts',
    servers: 1,
    config: (servers) => ({
      server: { xds: { debounceQuietMs: 20, debounceMaxMs: 200 } },
      clusters: [{ name: 'slow-backends', http2: true, retryPolicy: { enabled: false }, endpoints: servers.map((s) => ({ address: s.host, port: s.port })) }],
      listeners: [
        { name: 'timed', apiListener: true, routes: [{ cluster: 'slow-backends', timeoutMs: ROUTE_TIMEOUT_MS }] },
        { name: 'untimed', apiListener: true, routes: [{ cluster: 'slow-backends' }] },
      ],
    }),
  });
}, scaled(60_000));

afterAll(() => rig?.stop(), scaled(60_000));

/** Waits until a call on `target` succeeds: the channel has LDS, RDS, CDS and EDS. */
async function resolved(target: string): Promise<void> {
  await waitFor(
    async ({ note }) => {
      const results = await rig.client.call(target, { count: 1 });
      note(tally(results));
      return results.every((r) => r.server !== undefined);
    },
    { what: `a call on ${target} to succeed`, timeoutMs: 45_000, intervalMs: 200 },
  );
}

describe('proxyless gRPC and route timeouts', () => {
  test('a route timeoutMs ends a gRPC call to a slow backend with DEADLINE_EXCEEDED', async () => {
    await resolved('xds:///timed');
    const results = await rig.client.call('xds:///timed', { count: 1, metadata: { 'x-delay-ms': String(SLOW_MS) }, deadlineMs: scaled(30_000) });
    // Without the timeout in max_stream_duration, the call waited the 8 s and succeeded.
    expect(results.map((r) => r.code ?? `answered by ${r.server}`)).toEqual([DEADLINE_EXCEEDED]);
  }, scaled(90_000));

  test('a route without a timeout lets the same slow call finish', async () => {
    await resolved('xds:///untimed');
    const results = await rig.client.call('xds:///untimed', { count: 1, metadata: { 'x-delay-ms': '1000' }, deadlineMs: scaled(30_000) });
    expect(results.map((r) => r.server ?? `error ${r.code}: ${r.error}`)).toEqual(['proxyless-timeouts-0']);
  }, scaled(90_000));
});
