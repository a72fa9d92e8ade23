import { createHash } from 'node:crypto';

/**
 * Rendezvous (highest random weight) hashing: a cluster belongs to the live replica with the
 * highest hash of (replica, cluster). Every replica computes the same owner from the same member
 * list, clusters spread evenly, and when a replica joins or leaves only the clusters it gains or
 * held move (about 1/n of them), unlike `hash mod n`.
 */
export function rendezvousOwner(cluster: string, replicas: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestScore = -1n;
  for (const r of replicas) {
    const s = score(r, cluster);
    if (s > bestScore || (s === bestScore && best !== undefined && r < best)) {
      best = r;
      bestScore = s;
    }
  }
  return best;
}

function score(replica: string, cluster: string): bigint {
  return createHash('sha256').update(replica).update('\0').update(cluster).digest().readBigUInt64BE(0);
}
