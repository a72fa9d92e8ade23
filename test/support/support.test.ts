/** Unit tests of the test-support helpers that need no Envoy. */
import fs from 'node:fs';
import net from 'node:net';
import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { sendRequests, shares, startBackends } from './backends.js';
import { configDocArb, WARMING_HEALTH_CHECK_TIMEOUT_MS } from './catalog-arbitraries.js';
import { dumpClusterNames, dumpListenerNames, parseClusters, type ConfigDump } from './envoy.js';
import { drawRange, freePort, freePorts } from './ports.js';
import { timeFactor } from './timing.js';
import { waitFor, WaitTimeoutError } from './wait.js';

describe('waitFor', () => {
  test('returns the first truthy-ish value', async () => {
    let n = 0;
    const v = await waitFor(() => (++n >= 3 ? { n } : undefined), { what: 'n to reach 3', intervalMs: 1 });
    expect(v).toEqual({ n: 3 });
  });

  test('0 and empty string count as values; false/undefined/null do not', async () => {
    expect(await waitFor(() => 0, { what: 'zero' })).toBe(0);
    expect(await waitFor(() => '', { what: 'empty' })).toBe('');
  });

  test('times out with what, the last noted value and the last error', async () => {
    let n = 0;
    const err = await waitFor(
      ({ note }) => {
        n++;
        note({ seen: n });
        if (n % 2 === 0) throw new Error(`boom ${n}`);
        return false;
      },
      { what: 'the impossible', timeoutMs: 100, intervalMs: 5 },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WaitTimeoutError);
    const msg = (err as Error).message;
    expect(msg).toMatch(/Timed out after \d+ ms \(\d+ attempts\) waiting for the impossible/);
    expect(msg).toContain('Last observed value: { seen:');
  });

  test('a hanging attempt does not outlive the deadline', async () => {
    const started = Date.now();
    await expect(
      waitFor(() => new Promise<undefined>(() => undefined), { what: 'a promise that never settles', timeoutMs: 100 }),
    ).rejects.toThrow(/still pending at the deadline/);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  test('abort() rejects at once with its reason', async () => {
    const started = Date.now();
    await expect(
      waitFor(({ abort }) => abort(new Error('process died')), { what: 'never', timeoutMs: 10_000 }),
    ).rejects.toThrow('process died');
    expect(Date.now() - started).toBeLessThan(1000);
  });
});

describe('FULCRUM_TEST_TIME_FACTOR', () => {
  test('defaults to 1 and accepts a factor of at least 1', () => {
    expect(timeFactor({})).toBe(1);
    expect(timeFactor({ FULCRUM_TEST_TIME_FACTOR: '' })).toBe(1);
    expect(timeFactor({ FULCRUM_TEST_TIME_FACTOR: '3' })).toBe(3);
    expect(timeFactor({ FULCRUM_TEST_TIME_FACTOR: '1.5' })).toBe(1.5);
  });

  test('refuses what would shorten or break deadlines, naming the variable', () => {
    for (const bad of ['0.5', '0', '-2', 'slow', 'Infinity']) {
      expect(() => timeFactor({ FULCRUM_TEST_TIME_FACTOR: bad })).toThrow(/FULCRUM_TEST_TIME_FACTOR must be a number >= 1/);
    }
  });
});

describe('ports', () => {
  test('freePort gives a bindable port', async () => {
    const port = await freePort();
    expect(port).toBeGreaterThan(0);
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', resolve);
    });
    await new Promise((resolve) => server.close(resolve));
  });

  test('freePorts gives distinct ports', async () => {
    const ports = await freePorts(5);
    expect(new Set(ports).size).toBe(5);
  });

  test('ports come from below the ephemeral range, where listen(0) and outgoing connections never land', async () => {
    const ephemeralStart = Number(fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    const ports = await freePorts(20);
    for (const port of ports) expect(port).toBeLessThan(ephemeralStart);
    // A kernel-assigned port is in the ephemeral range, so it cannot be one of ours.
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const assigned = (server.address() as net.AddressInfo).port;
    await new Promise((resolve) => server.close(resolve));
    expect(assigned).toBeGreaterThanOrEqual(ephemeralStart);
  });

  test('each vitest worker draws from its own slice, so two workers never pick the same port', async () => {
    const slices = [1, 2, 3, 8].map((id) => drawRange(String(id)));
    for (let i = 0; i < slices.length; i++) {
      const [low, high] = slices[i]!;
      expect(high - low).toBeGreaterThan(1_000);
      for (const [otherLow, otherHigh] of slices.slice(i + 1)) expect(high <= otherLow || otherHigh <= low).toBe(true);
    }
    const [low, high] = drawRange();
    expect(process.env.VITEST_POOL_ID).toBeDefined();
    for (const port of await freePorts(20)) {
      expect(port).toBeGreaterThanOrEqual(low);
      expect(port).toBeLessThan(high);
    }
  });
});

describe('backends', () => {
  test('answer with their name and x-backend header, and count', async () => {
    const backends = await startBackends(3);
    try {
      for (const b of backends.list) {
        const res = await fetch(b.url);
        expect(res.status).toBe(200);
        expect(res.headers.get('x-backend')).toBe(String(b.index));
        expect(await res.text()).toBe(`backend-${b.index}`);
      }
      const r = await sendRequests(backends.list[1]?.url ?? '', 50, { concurrency: 4, headers: (i) => ({ 'x-i': String(i) }) });
      expect(r).toMatchObject({ sent: 50, ok: 50, errors: 0, distribution: { '1': 50 }, statuses: { 200: 50 } });
      expect(backends.counts()).toEqual([1, 51, 1]);
      expect(backends.total()).toBe(53);
      expect(backends.list[1]?.count).toBe(51);
      backends.reset();
      expect(backends.counts()).toEqual([0, 0, 0]);

      backends.behave(2, { status: 503 });
      const bad = await sendRequests(backends.list[2]?.url ?? '', 10);
      expect(bad).toMatchObject({ ok: 0, errors: 10, distribution: { '2': 10 }, statuses: { 503: 10 } });
      expect(bad.errorSamples).toEqual(['HTTP 503']);
    } finally {
      await backends.close();
    }
  });

  test('sendRequests counts connection failures as errors', async () => {
    const port = await freePort();
    const r = await sendRequests(`http://127.0.0.1:${port}/`, 5, { concurrency: 2 });
    expect(r).toMatchObject({ sent: 5, ok: 0, errors: 5, distribution: {} });
    expect(r.errorSamples.join()).toMatch(/ECONNREFUSED/);
  });

  test('shares', () => {
    expect(shares({ a: 1, b: 3 })).toEqual({ a: 0.25, b: 0.75 });
    expect(shares({})).toEqual({});
  });
});

describe('parseClusters', () => {
  const text = [
    'web::observability_name::web',
    'web::default_priority::max_connections::1024',
    'web::outlier::success_rate_average::-1',
    'web::added_via_api::true',
    'web::eds_service_name::web',
    'web::127.0.0.1:8081::cx_active::2',
    'web::127.0.0.1:8081::rq_total::10',
    'web::127.0.0.1:8081::hostname::',
    'web::127.0.0.1:8081::health_flags::healthy',
    'web::127.0.0.1:8081::weight::1',
    'web::127.0.0.1:8081::region::local',
    'web::127.0.0.1:8081::zone::a',
    'web::127.0.0.1:8081::success_rate::-1',
    'web::[::1]:8082::cx_active::0',
    'web::[::1]:8082::rq_total::30',
    'web::[::1]:8082::health_flags::/failed_active_hc/failed_eds_health',
    'web::[::1]:8082::weight::3',
    'web::[::1]:8082::priority::1',
    'other::added_via_api::false',
    '',
  ].join('\n');

  test('groups host lines per address, keeps settings, handles IPv6', () => {
    const c = parseClusters(text);
    expect(Object.keys(c)).toEqual(['web', 'other']);
    const web = c.web;
    expect(web?.added_via_api).toBe(true);
    expect(web?.settings).toMatchObject({
      observability_name: 'web',
      'default_priority::max_connections': '1024',
      'outlier::success_rate_average': '-1',
      eds_service_name: 'web',
    });
    expect(web?.hosts).toHaveLength(2);
    expect(web?.hosts[0]).toMatchObject({
      address: '127.0.0.1:8081',
      weight: 1,
      cx_active: 2,
      rq_total: 10,
      health_flags: 'healthy',
      healthy: true,
      region: 'local',
      zone: 'a',
      success_rate: -1,
    });
    expect(web?.hosts[1]).toMatchObject({
      address: '[::1]:8082',
      weight: 3,
      rq_total: 30,
      healthy: false,
      health_flags: '/failed_active_hc/failed_eds_health',
      priority: 1,
    });
    expect(c.other?.hosts).toEqual([]);
  });
});

describe('config dump helpers', () => {
  test('collect static and dynamic names', () => {
    const dump: ConfigDump = {
      configs: [
        {
          '@type': 'type.googleapis.com/envoy.admin.v3.ClustersConfigDump',
          static_clusters: [{ cluster: { name: 'fulcrum_xds' } }],
          dynamic_active_clusters: [{ version_info: '1', cluster: { name: 'web' } }],
        },
        {
          '@type': 'type.googleapis.com/envoy.admin.v3.ListenersConfigDump',
          static_listeners: [{ listener: { name: 'admin-ish' } }],
          dynamic_listeners: [{ name: 'ingress', active_state: { listener: { name: 'ingress' } } }],
        },
      ],
    };
    expect(dumpClusterNames(dump)).toEqual(['fulcrum_xds', 'web']);
    expect(dumpListenerNames(dump)).toEqual(['admin-ish', 'ingress']);
  });
});

describe('configDocArb', () => {
  // Envoy ACKs a cluster's CDS update only once every host's first health check has ended; the
  // parity test's endpoints are random addresses that may never answer (catalog-arbitraries.ts).
  test('health checks of clusters with endpoints time out within what the parity test waits for; others keep the full range', () => {
    const checked = fc
      .sample(configDocArb, { numRuns: 500, seed: 7 })
      .flatMap((d) => d.clusters)
      .flatMap((c) => {
        const hc = c.healthCheck as { timeoutMs?: number } | undefined;
        return hc?.timeoutMs === undefined ? [] : [{ withEndpoints: ((c.endpoints as unknown[] | undefined)?.length ?? 0) > 0, timeoutMs: hc.timeoutMs }];
      });
    const withEndpoints = checked.filter((c) => c.withEndpoints);
    expect(withEndpoints.length).toBeGreaterThan(0);
    expect(withEndpoints.filter((c) => c.timeoutMs > WARMING_HEALTH_CHECK_TIMEOUT_MS)).toEqual([]);
    expect(checked.some((c) => !c.withEndpoints && c.timeoutMs > WARMING_HEALTH_CHECK_TIMEOUT_MS)).toBe(true);
  });
});
