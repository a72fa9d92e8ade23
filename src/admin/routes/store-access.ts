import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import type { ClusterRecord, ListenerSuccessor, Owner, ResourceKind, CatalogStore, Successor, WriteOptions } from '../../catalog/store/index.js';
import { assertApiOwned, readPreconditions, storeIfMatch } from '../preconditions.js';
import { ApiError } from '../resources.js';

/** What the route plugins over the durable store share: their options, 404s and the options of an API write. */

/** Fastify's instance inside a TypeBox plugin (for helpers that add routes to it). */
export type AdminInstance = Parameters<FastifyPluginAsyncTypebox>[0];

/** What every plugin over the durable store is registered with. */
export interface StoreRoutesOptions {
  readonly store: CatalogStore;
  /** The audit actor of a request (set by the auth hook). */
  readonly actorOf: (request: FastifyRequest) => string;
}

/** The config file's definition that takes a name (a cluster's: Successor) when the API deletes it, if any. */
export type FileTakeover<S = Successor> = (name: string) => S | undefined;

/** Where the API's delete of a name the config file defines too finds the file's definition (ConfigSource). */
export interface FileTakeovers {
  readonly cluster: FileTakeover;
  readonly listener: FileTakeover<ListenerSuccessor>;
}

/** Throws the 404 of an unknown name, e.g. `cluster "web" does not exist`. */
export function notFound(what: string): never {
  throw new ApiError(404, `${what} does not exist`, undefined, 'NOT_FOUND');
}

export function requireCluster(store: CatalogStore, name: string): ClusterRecord {
  return store.getCluster(name) ?? notFound(`cluster ${JSON.stringify(name)}`);
}

/** The cluster's owner, or the 404 of an unknown cluster: for requests on one endpoint, which need no more of the cluster. */
export function requireClusterOwner(store: CatalogStore, name: string): Owner {
  return store.clusterOwner(name) ?? notFound(`cluster ${JSON.stringify(name)}`);
}

/** The resource an API write targets: whose it is and its revision now (undefined: it does not exist). */
export interface WriteTarget {
  readonly kind: ResourceKind;
  readonly name: string;
  readonly owner: Owner | undefined;
  readonly revision: number | undefined;
  /** How a 412 names it, e.g. `cluster "web"`. */
  readonly what: string;
}

/**
 * Ownership first, then the client's preconditions: the options every API write gives the store (a
 * PATCH says so, for the audit log). A PATCH merges into what it read, so it is written on that
 * revision whether or not the client sent If-Match: a concurrent write makes it conflict, not vanish.
 */
export function apiWriteOptions(request: FastifyRequest, actorOf: StoreRoutesOptions['actorOf'], target: WriteTarget): WriteOptions {
  assertApiOwned(target.kind, target.name, target.owner);
  const ifMatch = storeIfMatch(readPreconditions(request.headers), target.revision, target.what) ?? (request.method === 'PATCH' ? target.revision : undefined);
  return { owner: 'api', actor: actorOf(request), ...(ifMatch !== undefined ? { ifMatch } : {}), ...(request.method === 'PATCH' ? { intent: 'patch' as const } : {}) };
}
