import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { ListenerRecord, CatalogStore } from '../../catalog/store/index.js';
import type { Listener } from '../../catalog/types.js';
import { ListenerIn, ListenerView } from '../api-schemas.js';
import { ApiError, listenerView, parseListenerBody } from '../resources.js';
import { namedResourceRoutes, type NamedResource } from './crud.js';
import type { StoreRoutesOptions } from './store-access.js';

/** /v1/listeners: listeners and their routes as config-file entries, created, replaced and deleted whole. */

const ListenerList = Type.Object({ count: Type.Integer(), listeners: Type.Array(ListenerView) });

/** 409 when another listener already binds the socket address. */
function assertAddressFree(store: CatalogStore, listener: Listener): void {
  if (listener.kind !== 'socket') return;
  const clash = store.listListeners().find((l) => l.name !== listener.name && l.kind === 'socket' && l.address === listener.address && l.port === listener.port);
  if (clash) throw new ApiError(409, `${listener.address}:${listener.port} is already used by listener "${clash.name}"`, '/body/port', 'ADDRESS_IN_USE');
}

function listeners(store: CatalogStore): NamedResource<ListenerRecord, typeof ListenerIn, Listener> {
  return {
    kind: 'listener',
    plural: 'listeners',
    schemas: { view: ListenerView, list: ListenerList, input: ListenerIn },
    summaries: {
      list: 'Every listener',
      get: 'One listener, as a config-file entry plus owner and revision (ETag)',
      put: 'Create or replace a listener (body: a config-file listener entry; routes must name existing clusters)',
      delete: 'Delete an API-owned listener',
    },
    list: () => store.listListeners(),
    get: (name) => store.getListener(name),
    view: listenerView,
    parse: (body, name) => {
      const listener = parseListenerBody(body, name, store.listClusters().map((c) => c.name));
      assertAddressFree(store, listener);
      return listener;
    },
    put: (listener, options) => store.putListener(listener, options),
    delete: (name, options) => store.deleteListener(name, options),
  };
}

export const listenerRoutes: FastifyPluginAsyncTypebox<StoreRoutesOptions> = async (app, { store, actorOf }) => {
  namedResourceRoutes(app, listeners(store), actorOf);
};
