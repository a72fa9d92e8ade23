import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type, type Static } from '@sinclair/typebox';
import type { ListenerRecord, ListenerSuccessor, CatalogStore, MaybePromise, WriteGuard, WriteOptions, WriteResult } from '../../catalog/store/index.js';
import { comparableKey, spelledTwice } from '../../catalog/address-spelling.js';
import type { Listener } from '../../catalog/types.js';
import { ListenerIn, ListenerPatch, ListenerView } from '../api-schemas.js';
import { ApiError, listenerView, parseListenerBody } from '../resources.js';
import { namedResourceRoutes, type NamedResource } from './crud.js';
import type { FileTakeover, StoreRoutesOptions } from './store-access.js';

/** /v1/listeners: listeners and their routes as config-file entries, created, replaced and deleted whole. */

const ListenerList = Type.Object({ count: Type.Integer(), listeners: Type.Array(ListenerView) });

/** 409 when another listener already binds the socket address, however its IPv6 address is spelled (Envoy NACKs both). */
function assertAddressFree(store: CatalogStore, listener: Listener): void {
  if (listener.kind !== 'socket') return;
  const key = comparableKey(listener);
  const clash = store.listListeners().find((l) => l.name !== listener.name && l.kind === 'socket' && l.port === listener.port && comparableKey(l) === key);
  if (!clash) return;
  const spelled = clash.address === listener.address ? '' : ` (${spelledTwice(listener.address, clash.address)})`;
  throw new ApiError(409, `${listener.address}:${listener.port} is already used by listener "${clash.name}"${spelled}`, '/body/port', 'ADDRESS_IN_USE');
}

/**
 * The body as a listener, once it passed every rule about other resources: its routes name
 * existing clusters (a cluster's owner is a cheap read; listing them reads every endpoint) and its
 * socket address is free.
 */
function checkedListener(store: CatalogStore, body: Static<typeof ListenerIn>, name: string): Listener {
  const known = [...new Set(body.routes.map((r) => r.cluster))].filter((c) => store.clusterOwner(c) !== undefined);
  const listener = parseListenerBody(body, name, known);
  assertAddressFree(store, listener);
  return listener;
}

/** The clusters the listener's routes name that do not exist now (another owner removed them: README "References across owners"). */
function missingClusters(store: CatalogStore, listener: ListenerRecord): string[] {
  return [...new Set(listener.routes.map((r) => r.cluster))].filter((c) => store.clusterOwner(c) === undefined);
}

/** A parsed listener and its checks, run again by the store where the write commits. */
interface CheckedListener {
  readonly listener: Listener;
  readonly guard: WriteGuard;
}

/**
 * Deletes the listener; one the config file defines too is handed to the file in the same store
 * transaction (its definition written in its place), so no snapshot without it is ever built and
 * proxies never drain its socket.
 */
function deleteListener(store: CatalogStore, name: string, options: WriteOptions, fileTakesOver: FileTakeover<ListenerSuccessor>): MaybePromise<WriteResult> {
  const successor = fileTakesOver(name);
  return store.deleteListener(name, { ...options, ...(successor ? { successor } : {}) });
}

function listeners(store: CatalogStore, fileTakesOver: FileTakeover<ListenerSuccessor>): NamedResource<ListenerRecord, typeof ListenerIn, CheckedListener> {
  return {
    kind: 'listener',
    plural: 'listeners',
    schemas: { view: ListenerView, list: ListenerList, input: ListenerIn, patch: ListenerPatch },
    summaries: {
      list: 'Every listener',
      get: 'One listener, as a config-file entry plus owner and revision (ETag)',
      put: 'Create or replace a listener (body: a config-file listener entry; routes must name existing clusters)',
      patch: 'Change some fields of a listener and keep the others (JSON merge patch; PUT replaces)',
      delete: 'Delete an API-owned listener',
    },
    list: () => store.listListeners(),
    get: (name) => store.getListener(name),
    view: (rec) => listenerView(rec, missingClusters(store, rec)),
    parse: (body, name) => {
      const listener = checkedListener(store, body, name);
      // Checked now for an early answer, and again as the store commits: a concurrent write may
      // bind the address or delete a routed cluster in between (Envoy NACKs a second listener on
      // one address; a route to a deleted cluster dangles).
      const check = (): void => void checkedListener(store, body, name);
      return { listener, guard: { check, reads: { clusters: listener.routes.map((r) => r.cluster), listeners: true } } };
    },
    put: ({ listener, guard }, options) => store.putListener(listener, { ...options, guard }),
    delete: (name, options) => deleteListener(store, name, options, fileTakesOver),
  };
}

export interface ListenerRoutesOptions extends StoreRoutesOptions {
  /** The config file's definition of this listener when it takes the name as the API deletes it (ConfigSource.listenerTakeoverOf). */
  readonly fileTakesOver?: FileTakeover<ListenerSuccessor>;
}

export const listenerRoutes: FastifyPluginAsyncTypebox<ListenerRoutesOptions> = async (app, { store, actorOf, fileTakesOver = () => undefined }) => {
  namedResourceRoutes(app, listeners(store, fileTakesOver), actorOf);
};
