/**
 * Two fulcrum processes (startFulcrum) with `store.kind: etcd` on one real 3-member etcd, through
 * their admin HTTP APIs: both seed the same config file; a write on one replica is read on the
 * other with the same ETag; racing If-Match PUTs on both give one 200 and one 412; with quorum
 * lost, writes answer 503 STORE_UNAVAILABLE (at once, and never applied, once the replica knows),
 * reads still answer, /readyz says why it is not ready; with quorum back, everything resumes
 * without a restart.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { startFulcrum, type Fulcrum } from '../../src/main.js';
import { describeEtcd, startEtcdCluster, type EtcdCluster } from '../support/etcd-cluster.js';
import { scaled, waitFor } from '../support/wait.js';

const CLUSTER = { lbPolicy: 'ROUND_ROBIN', endpoints: [{ address: '10.0.0.1', port: 8080 }] };

describeEtcd('two fulcrum replicas on etcd, through the admin API', () => {
  let etcd: EtcdCluster;
  let dir: string;
  const replicas: Fulcrum[] = [];
  beforeAll(async () => {
    etcd = await startEtcdCluster(3);
    dir = await mkdtemp(join(tmpdir(), 'fulcrum-ha-admin-'));
    const configPath = join(dir, 'fulcrum.yaml');
    const store = { kind: 'etcd', etcd: { endpoints: etcd.endpoints, prefix: `/admin-${randomBytes(4).toString('hex')}`, writeTimeoutMs: 2_000 } };
    await writeFile(configPath, stringify({ store, clusters: [{ name: 'files', endpoints: [{ address: '10.0.0.9', port: 80 }] }] }));
    const start = () => startFulcrum({ configPath, xdsPort: 0, xdsAddress: '127.0.0.1', adminAddress: '127.0.0.1', logger: pino({ level: 'silent' }), auth: { adminTokens: [], readTokens: [] } });
    replicas.push(...(await Promise.all([start(), start()])));
  }, 180_000);
  afterAll(async () => {
    await Promise.all(replicas.map((r) => r.stop()));
    await etcd?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const call = async (r: Fulcrum, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
    const res = await fetch(`http://127.0.0.1:${r.adminPort}${path}`, {
      method,
      headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    return { status: res.status, etag: res.headers.get('etag'), body: (await res.json()) as Record<string, unknown> };
  };

  it('both replicas seeded the same file once; a write on A is read on B with the same ETag', async () => {
    const [a, b] = replicas as [Fulcrum, Fulcrum];
    expect(a.store.audit().filter((e) => e.name === 'files')).toHaveLength(1);
    const put = await call(a, 'PUT', '/v1/clusters/shared', CLUSTER);
    expect(put.status).toBe(201);
    const onB = await waitFor(async () => {
      const got = await call(b, 'GET', '/v1/clusters/shared');
      return got.status === 200 ? got : undefined;
    }, { what: 'B serves A\'s write', timeoutMs: scaled(10_000) });
    expect(onB.etag).toBe(put.etag);
  });

  it('racing If-Match PUTs on two replicas: one 200, one 412', async () => {
    const [a, b] = replicas as [Fulcrum, Fulcrum];
    const { etag } = await call(a, 'PUT', '/v1/clusters/race', CLUSTER);
    await waitFor(async () => (await call(b, 'GET', '/v1/clusters/race')).etag === etag, { what: 'B caught up', timeoutMs: scaled(10_000) });
    const ifMatch = { 'if-match': etag ?? '' };
    const results = await Promise.all([
      call(a, 'PUT', '/v1/clusters/race', { ...CLUSTER, connectTimeoutMs: 111 }, ifMatch),
      call(b, 'PUT', '/v1/clusters/race', { ...CLUSTER, connectTimeoutMs: 222 }, ifMatch),
    ]);
    expect(results.map((r) => r.status).sort()).toEqual([200, 412]);
    expect(results.find((r) => r.status === 412)?.body).toMatchObject({ code: 'REVISION_MISMATCH' });
  });

  it('quorum lost: writes 503 with the reason, reads still 200, not ready; quorum back: all resumes', async () => {
    const [a, b] = replicas as [Fulcrum, Fulcrum];
    await etcd.stopMember(1);
    await etcd.stopMember(2);
    const refused = await waitFor(async () => {
      const res = await call(a, 'PUT', '/v1/clusters/during', CLUSTER);
      return res.status === 503 ? res : undefined;
    }, { what: 'a write refused with 503', timeoutMs: scaled(30_000) });
    expect(refused.body).toMatchObject({ error: 'Service Unavailable', code: 'STORE_UNAVAILABLE' });
    expect(String(refused.body.message)).toMatch(/etcd/);
    expect((await call(b, 'GET', '/v1/clusters/shared')).status).toBe(200);
    // Replication (src/ha) may report itself cut off first; the store's reason joins it.
    const ready = await waitFor(async () => {
      const res = await call(b, 'GET', '/readyz');
      return res.status === 503 && JSON.stringify(res.body.reasons).includes('store:') ? res : undefined;
    }, { what: 'B not ready for want of the store', timeoutMs: scaled(30_000) });
    expect(JSON.stringify(ready.body.reasons)).toMatch(/store: etcd unreachable or without quorum/);
    // Once a replica knows it is cut off, it refuses at once and sends nothing: such a write never
    // appears later. (A write sent before that timed out: its outcome is unknown, said the 503.)
    const startedAt = Date.now();
    const fenced = await call(b, 'PUT', '/v1/clusters/fenced', CLUSTER);
    expect(fenced.status).toBe(503);
    expect(Date.now() - startedAt).toBeLessThan(scaled(1_000));

    await etcd.startMember(1);
    await etcd.startMember(2);
    await waitFor(async () => (await call(a, 'GET', '/readyz')).status === 200 && (await call(b, 'GET', '/readyz')).status === 200, {
      what: 'both ready again',
      timeoutMs: scaled(60_000),
    });
    expect((await call(b, 'PUT', '/v1/clusters/after', CLUSTER)).status).toBe(201);
    await waitFor(async () => (await call(a, 'GET', '/v1/clusters/after')).status === 200, { what: 'A serves B\'s write', timeoutMs: scaled(30_000) });
    expect((await call(a, 'GET', '/v1/clusters/fenced')).status).toBe(404);
    expect((await call(b, 'GET', '/v1/clusters/fenced')).status).toBe(404);
    // Whatever became of the timed-out write, both replicas agree on it.
    expect((await call(a, 'GET', '/v1/clusters/during')).status).toBe((await call(b, 'GET', '/v1/clusters/during')).status);
  });
}, { timeout: 180_000 });
