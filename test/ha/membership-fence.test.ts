/**
 * Fencing against a real etcd: a replica cut off from etcd stops owning within two thirds of its
 * lease TTL, before etcd can hand its clusters to another, whatever its wall clock does meanwhile.
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
});
