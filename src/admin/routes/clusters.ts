import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { ClusterInput, ClusterRecord, CatalogStore, MaybePromise, Owner, WriteOptions, WriteResult } from '../../catalog/store/index.js';
import { listClustersInTurnsOf } from '../../catalog/store/catalog-store.js';
import { ClusterIn, ClusterPatch, ClusterView } from '../api-schemas.js';
import { ApiError, clusterView, clusterViewWith, endpointEntry, withKeptAffinity } from '../resources.js';
import { parseClusterBodySliced } from '../sliced-parse.js';
import { namedResourceRoutes, type NamedResource } from './crud.js';
import type { FileTakeover, StoreRoutesOptions } from './store-access.js';

/** /v1/clusters: clusters as config-file entries, created, replaced and deleted whole. */

export const ClusterList = Type.Object({ count: Type.Integer(), clusters: Type.Array(ClusterView) });

const quoted = (names: readonly string[]): string => names.map((n) => JSON.stringify(n)).join(', ');
const plural = (noun: string, names: readonly string[]): string => `${noun}${names.length > 1 ? 's' : ''} ${quoted(names)}`;

/**
 * 409 while a listener routes to the cluster or a node group serves it. The config file's own
 * listeners and groups do not hold a name the file takes over once the API deletes it (README:
 * "delete it through the API to hand the name to the file"): their references stay good.
 */
function assertUnreferenced(store: CatalogStore, name: string, fileTakesOver: FileTakeover): void {
  const holds = (owner: Owner): boolean => owner !== 'file' || fileTakesOver(name) === undefined;
  const listeners = store.listListeners().filter((l) => holds(l.owner) && l.routes.some((r) => r.cluster === name)).map((l) => l.name);
  const groups = store.listNodeGroups().filter((g) => holds(g.owner) && g.clusters.includes(name)).map((g) => g.nodeCluster);
  if (listeners.length === 0 && groups.length === 0) return;
  const by = [...(listeners.length > 0 ? [plural('listener', listeners)] : []), ...(groups.length > 0 ? [plural('node group', groups)] : [])].join(' and ');
  throw new ApiError(409, `cluster "${name}" is still referenced by ${by}; remove those references first`, undefined, 'REFERENCED');
}

/**
 * Deletes the cluster; one the config file defines too is handed to the file in the same store
 * transaction (its definition written in its place), so no snapshot without it is ever built.
 */
function deleteCluster(store: CatalogStore, name: string, options: WriteOptions, fileTakesOver: FileTakeover): MaybePromise<WriteResult> {
  const successor = fileTakesOver(name);
  // Checked again as the store commits: a listener or node group naming the cluster may be written in between.
  const guard = { check: () => assertUnreferenced(store, name, fileTakesOver), reads: { listeners: true, nodeGroups: true } };
  return store.deleteCluster(name, { ...options, guard, ...(successor ? { successor } : {}) });
}

function clusters(store: CatalogStore, fileTakesOver: FileTakeover): NamedResource<ClusterRecord, typeof ClusterIn, ClusterInput> {
  return {
    kind: 'cluster',
    plural: 'clusters',
    schemas: { view: ClusterView, list: ClusterList, input: ClusterIn, patch: ClusterPatch },
    summaries: {
      list: 'Every cluster, with its endpoints',
      get: 'One cluster, as a config-file entry plus owner and revision (ETag)',
      put: 'Create or replace a cluster (body: a config-file cluster entry; without endpoints, the endpoints are kept)',
      patch: 'Change some fields of a cluster and keep the others (JSON merge patch; PUT replaces)',
      delete: 'Delete a cluster, its endpoints and its weights (409 while a listener or node group references it)',
    },
    list: () => store.listClusters(),
    listInTurns: (turn) => listClustersInTurnsOf(store, turn),
    get: (name) => store.getCluster(name),
    view: clusterView,
    parse: parseClusterBodySliced,
    put: (input, options) => store.putCluster(withKeptAffinity(input, () => store.getCluster(input.name)), options),
    assertDeletable: (name) => assertUnreferenced(store, name, fileTakesOver),
    delete: (name, options) => deleteCluster(store, name, options, fileTakesOver),
    longArray: { key: 'endpoints', items: (rec) => rec.endpoints, view: (rec) => clusterViewWith(rec, rec.endpoints), entry: endpointEntry },
  };
}

export interface ClusterRoutesOptions extends StoreRoutesOptions {
  /** The config file's definition of this cluster when it takes the name as the API deletes it (ConfigSource.takeoverOf). */
  readonly fileTakesOver?: FileTakeover;
}

export const clusterRoutes: FastifyPluginAsyncTypebox<ClusterRoutesOptions> = async (app, { store, actorOf, fileTakesOver = () => undefined }) => {
  namedResourceRoutes(app, clusters(store, fileTakesOver), actorOf);
};
