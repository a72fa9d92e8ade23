/**
 * The etcd key layout of replication, under one prefix (the store's, e.g. `/fulcrum`), in its own
 * `ha/` directory so that it never meets the store's sections (the store keeps its own
 * `weights/`, the archive a single process uses):
 *
 *   <prefix>/ha/replicas/<id>          a live replica (under its lease)
 *   <prefix>/ha/owners/<cluster>       the replica that ticks the cluster (under the owner's lease)
 *   <prefix>/ha/weights/<cluster>      what the owner published, with its controller state (every stateRefreshMs)
 *   <prefix>/ha/served/<cluster>       what the owner published, at every change
 *   <prefix>/ha/signals/<id>           the replica's per-endpoint aggregates for clusters it does not own (under its lease)
 */
export interface HaKeys {
  readonly replicas: string;
  readonly owners: string;
  readonly weights: string;
  readonly served: string;
  readonly signals: string;
  replica(id: string): string;
  owner(cluster: string): string;
  weight(cluster: string): string;
  servedWeight(cluster: string): string;
  signal(id: string): string;
}

export function haKeys(prefix: string): HaKeys {
  const base = prefix.replace(/\/+$/, '');
  const dir = (name: string): string => `${base}/ha/${name}/`;
  const replicas = dir('replicas');
  const owners = dir('owners');
  const weights = dir('weights');
  const served = dir('served');
  const signals = dir('signals');
  return {
    replicas,
    owners,
    weights,
    served,
    signals,
    replica: (id) => replicas + id,
    owner: (cluster) => owners + cluster,
    weight: (cluster) => weights + cluster,
    servedWeight: (cluster) => served + cluster,
    signal: (id) => signals + id,
  };
}

/** The last segment of a key under `dir` (a replica id or a cluster name). */
export function nameUnder(dir: string, key: string): string | undefined {
  return key.startsWith(dir) && key.length > dir.length ? key.slice(dir.length) : undefined;
}
