import type { Etcd3, Namespace } from 'etcd3';

const ATTEMPTS = 20;
const RETRY_MS = 500;

/**
 * Whether etcd's history now ends below `seen`, a revision a watch delivered: etcd was restored
 * from an older snapshot (without `etcdutl snapshot restore --bump-revision`) or rebuilt. A watch's
 * create answer comes from the member it reached, which may merely lag; this read is
 * linearizable (through the leader), so only a real rewind answers true. Asked again while etcd
 * cannot answer (just restarted, electing a leader) and `live()` holds, for about ten seconds.
 */
export async function historyRewound(kv: Pick<Etcd3 | Namespace, 'get'>, key: string, seen: bigint, live: () => boolean): Promise<boolean> {
  for (let attempt = 1; attempt <= ATTEMPTS && live(); attempt++) {
    try {
      const res = await kv.get(key).exec();
      return BigInt(res.header.revision) < seen;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS).unref());
    }
  }
  return false;
}
