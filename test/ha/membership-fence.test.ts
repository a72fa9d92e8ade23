/**
 * Fencing against a real etcd: a replica cut off from etcd stops owning within two thirds of its
 * lease TTL, before etcd can hand its clusters to another, whatever its wall clock does meanwhile
 * and however late it reads etcd's answers.
 */
import { Etcd3 } from 'etcd3';
import { pino } from 'pino';
import { afterEach, expect, it, vi } from 'vitest';
import { haKeys } from '../../src/ha/keys.js';
import { Membership } from '../../src/ha/membership.js';
import { describeEtcd, etcdForBlock } from '../support/etcd-cluster.js';
import { startTcpRelay, type TcpRelay } from '../support/tcp-relay.js';
import { scaled, waitFor } from '../support/wait.js';

const log = pino({ level: 'silent' });

describeEtcd('membership fencing', () => {
  const etcd = etcdForBlock();
  let relay: TcpRelay | undefined;
  let client: Etcd3 | undefined;
  let membership: Membership | undefined;
  afterEach(async () => {
    vi.restoreAllMocks();
    relay?.restore();
    await membership?.stop();
    client?.close();
    await relay?.close();
  });

  it('a replica cut off from etcd is fenced within 2/3 of the TTL although its wall clock stepped back', async () => {
    const url = new URL(etcd.etcd.endpoints[0] as string);
    const through = await startTcpRelay({ host: url.hostname, port: Number(url.port) });
    relay = through;
    client = new Etcd3({ hosts: [through.url], dialTimeout: 2_000 });
    const m = new Membership({ client, keys: haKeys('/fence-clock'), replicaId: 'a', ttlSeconds: 3, log, onChange: () => undefined });
    membership = m;
    await m.start();
    expect(m.fenced()).toBe(false);
    // NTP steps the clock back a minute (or a VM resumes) just as the network to etcd goes.
    const wall = Date.now.bind(Date);
    vi.spyOn(Date, 'now').mockImplementation(() => wall() - 60_000);
    through.cut();
    const cutAt = performance.now();
    await waitFor(() => m.fenced(), { what: 'fenced', timeoutMs: 10_000, intervalMs: 50 });
    // Keep-alives go out every second (TTL / 3): fenced 2 s after the last that succeeded.
    expect(performance.now() - cutAt).toBeLessThan(scaled(3_000));
  });

  // The review's finding: the fence counted from when an answer was read. Read after a pause
  // (a long GC), it said the lease was renewed then, when etcd had renewed it as the request came.
  it('a keep-alive whose answer is read after a pause counts from when it was sent', async () => {
    client = new Etcd3({ hosts: [...etcd.etcd.endpoints] });
    let clock = 1_000_000;
    let armed = false;
    let fencedAfterPause: boolean | undefined;
    // Of a 3 s TTL: etcd renewed the lease when the request came, so it may expire 0.5 s after the answer is read.
    const pauseMs = 2_500;
    const grant = client.lease.bind(client);
    client.lease = (ttl, options) => {
      const lease = grant(ttl, options);
      // Runs before the membership's own listener: the answer is read only after the pause.
      lease.on('keepaliveSucceeded', () => {
        if (!armed) return;
        armed = false;
        clock += pauseMs;
        queueMicrotask(() => (fencedAfterPause = m.fenced()));
      });
      return lease;
    };
    const m = new Membership({ client, keys: haKeys('/fence-pause'), replicaId: 'a', ttlSeconds: 3, log, onChange: () => undefined, now: () => clock });
    membership = m;
    await m.start();
    expect(m.fenced()).toBe(false);
    armed = true;
    await waitFor(() => fencedAfterPause !== undefined, { what: 'a keep-alive answered', timeoutMs: scaled(10_000), intervalMs: 50 });
    expect(fencedAfterPause).toBe(true);
  });
});
