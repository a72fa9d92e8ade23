/**
 * Signals forwarded to a cluster's owner through a real etcd: reports landing on a replica that
 * does not own their cluster reach the owner's signal store, however many endpoints they cover.
 */
import type { Etcd3 } from 'etcd3';
import { pino } from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildEtcdClient } from '../../src/catalog/store/etcd-client.js';
import { haKeys } from '../../src/ha/keys.js';
import { SignalShare, type SharedSignals } from '../../src/ha/signal-share.js';
import type { Sample, SignalListener } from '../../src/signals/signal-store.js';
import { describeEtcd, startEtcdCluster, type EtcdCluster } from '../support/etcd-cluster.js';
import { waitFor } from '../support/wait.js';

const log = pino({ level: 'silent' });

/** A replica's signal store as the share sees it: what it recorded locally is announced, what came from others counted. */
function signals() {
  const listeners: SignalListener[] = [];
  const received = new Map<string, Sample>();
  const shared: SharedSignals = {
    subscribe: (l) => (listeners.push(l), () => undefined),
    record: (cluster, key, sample) => (received.set(`${cluster}/${key}`, sample), true),
    now: () => 1,
  };
  const report = (cluster: string, key: string, sample: Sample): void => {
    for (const l of listeners) l({ kind: 'sample', cluster, key, sample });
  };
  return { shared, received, report };
}

describeEtcd('signal share through etcd', () => {
  let etcd: EtcdCluster;
  let client: Etcd3;
  beforeAll(async () => {
    etcd = await startEtcdCluster(1);
    // The client fulcrum builds (its retry and member policies), as a replica uses it.
    client = buildEtcdClient({ endpoints: [...etcd.endpoints], prefix: '/signals' });
  }, 120_000);
  afterAll(async () => {
    client?.close();
    await etcd?.stop();
  });

  /** Replica a (owns nothing) and b (owns everything) sharing through `prefix`, and a lease for a's batches. */
  async function replicas(prefix: string) {
    const keys = haKeys(prefix);
    const a = signals();
    const b = signals();
    const shareA = new SignalShare({ client, keys, replicaId: 'a', signals: a.shared, owns: () => false, log });
    const shareB = new SignalShare({ client, keys, replicaId: 'b', signals: b.shared, owns: () => true, log });
    await shareA.start();
    await shareB.start();
    const lease = client.lease(30);
    const leaseId = await lease.grant();
    const stop = async (): Promise<void> => {
      await shareA.stop();
      await shareB.stop();
      await lease.revoke();
    };
    return { a, b, shareA, leaseId, stop };
  }

  it('a tick\'s reports for 40,000 endpoints another replica owns all reach it (more than one etcd request holds)', async () => {
    const { a, b, shareA, leaseId, stop } = await replicas('/signals-big');
    try {
      const clusters = 400;
      const perCluster = 100;
      for (let c = 0; c < clusters; c++) {
        for (let e = 0; e < perCluster; e++) {
          a.report(`ns-${c}/svc:8080`, `10.${c >> 8}.${c & 255}.${e}:8080`, { at: 1_000 + e, cpu: 0.4321 + e / 1e4, latencyMs: 12.5, inflight: 3, rps: 100.25, errors: 0 });
        }
      }
      await shareA.flush(leaseId).catch((err: unknown) => log.warn({ err }, 'flush failed'));
      await waitFor(() => b.received.size === clusters * perCluster, { what: `b received every endpoint's sample (has ${b.received.size})`, timeoutMs: 10_000 });
      expect(b.received.get('ns-7/svc:8080/10.0.7.42:8080')?.cpu).toBeCloseTo(0.4363);
    } finally {
      await stop();
    }
  });

  it("an agent's older sample brings the owner the fields another source's newer samples lack", async () => {
    const { a, b, shareA, leaseId, stop } = await replicas('/signals-fields');
    try {
      a.report('web', '10.0.0.1:8080', { at: 300, cpu: 0.5 });
      a.report('web', '10.0.0.1:8080', { at: 50, latencyMs: 12, cpu: 0.9 });
      await shareA.flush(leaseId);
      const got = await waitFor(() => b.received.get('web/10.0.0.1:8080'), { what: 'the owner received the endpoint', timeoutMs: 10_000 });
      expect(got).toMatchObject({ cpu: 0.5, latencyMs: 12 });
    } finally {
      await stop();
    }
  });
});
