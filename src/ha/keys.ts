/**
 * The etcd key layout of replication, under one prefix (the store's, e.g. `/fulcrum`):
 *
 *   <prefix>/replicas/<id>          a live replica (under its lease)
 *   <prefix>/owners/<cluster>       the replica that ticks the cluster (under the owner's lease)
 *   <prefix>/weights/<cluster>      what the owner published, with its controller state
 *   <prefix>/signals/<id>           the replica's per-endpoint aggregates for clusters it does not own (under its lease)
 */
export interface HaKeys {
  readonly replicas: string;
  readonly owners: string;
  readonly weights: string;
  readonly signals: string;
  replica(id: string): string;
  owner(cluster: string): string;
  weight(cluster: string): string;
  signal(id: string): string;
}

export function haKeys(prefix: string): HaKeys {
  const base = prefix.replace(/\/+$/, '');
  const dir = (name: string): string => `${base}/${name}/`;
  const replicas = dir('replicas');
  const owners = dir('owners');
  const weights = dir('weights');
  const signals = dir('signals');
  return {
    replicas,
    owners,
    weights,
    signals,
    replica: (id) => replicas + id,
    owner: (cluster) => owners + cluster,
    weight: (cluster) => weights + cluster,
    signal: (id) => signals + id,
  };
}

/** The last segment of a key under `dir` (a replica id or a cluster name). */
export function nameUnder(dir: string, key: string): string | undefined {
  return key.startsWith(dir) && key.length > dir.length ? key.slice(dir.length) : undefined;
}
