import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { ClusterInput, ClusterRecord, CatalogStore } from '../../catalog/store/index.js';
import { listClustersInTurnsOf } from '../../catalog/store/catalog-store.js';
import { ClusterIn, ClusterPatch, ClusterView } from '../api-schemas.js';
import { ApiError, clusterView, clusterViewWith, endpointEntry, withKeptAffinity } from '../resources.js';
import { parseClusterBodySliced } from '../sliced-parse.js';
import { namedResourceRoutes, type NamedResource } from './crud.js';
import type { StoreRoutesOptions } from './store-access.js';

/** /v1/clusters: clusters as config-file entries, created, replaced and deleted whole. */

export const ClusterList = Type.Object({ count: Type.Integer(), clusters: Type.Array(ClusterView) });

const quoted = (names: readonly string[]): string => names.map((n) => JSON.stringify(n)).join(', ');
const plural = (noun: string, names: readonly string[]): string => `${noun}${names.length > 1 ? 's' : ''} ${quoted(names)}`;

/** 409 while a listener routes to the cluster or a node group serves it. */
function assertUnreferenced(store: CatalogStore, name: string): void {
  const listeners = store.listListeners().filter((l) => l.routes.some((r) => r.cluster === name)).map((l) => l.name);
  const groups = store.listNodeGroups().filter((g) => g.clusters.includes(name)).map((g) => g.nodeCluster);
  if (listeners.length === 0 && groups.length === 0) return;
  const by = [...(listeners.length > 0 ? [plural('listener', listeners)] : []), ...(groups.length > 0 ? [plural('node group', groups)] : [])].join(' and ');
  throw new ApiError(409, `cluster "${name}" is still referenced by ${by}; remove those references first`, undefined, 'REFERENCED');
}

function clusters(store: CatalogStore): NamedResource<ClusterRecord, typeof ClusterIn, ClusterInput> {
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
    assertDeletable: (name) => assertUnreferenced(store, name),
    // Checked again as the store commits: a listener or node group naming the cluster may be written in between.
    delete: (name, options) => store.deleteCluster(name, { ...options, guard: { check: () => assertUnreferenced(store, name), reads: { listeners: true, nodeGroups: true } } }),
    longArray: { key: 'endpoints', items: (rec) => rec.endpoints, view: (rec) => clusterViewWith(rec, rec.endpoints), entry: endpointEntry },
  };
}

export const clusterRoutes: FastifyPluginAsyncTypebox<StoreRoutesOptions> = async (app, { store, actorOf }) => {
  namedResourceRoutes(app, clusters(store), actorOf);
};
