import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { StringEnum, Timestamp } from '../schemas.js';
import { securedRoute } from './schema-parts.js';
import type { StoreRoutesOptions } from './store-access.js';

/** /v1/audit: every change to desired state, newest first, paged by id. */

const AuditQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100, description: 'Entries per page (newest first)' })),
    before: Type.Optional(Type.Integer({ minimum: 1, description: 'Only entries older than this id (the previous page\'s nextBefore)' })),
  },
  { additionalProperties: false },
);

const AuditEntry = Type.Object(
  {
    id: Type.Integer(),
    at: Timestamp,
    actor: Type.String(),
    action: StringEnum(['create', 'update', 'delete', 'set-state'] as const),
    kind: StringEnum(['cluster', 'endpoint', 'listener', 'node-group', 'override'] as const),
    name: Type.String({ description: 'Endpoints are named <cluster>/<address>:<port>' }),
    revision: Type.Integer(),
    before: Type.Any({ description: 'The record before the change (null on create)' }),
    after: Type.Any({ description: 'The record after the change (null on delete)' }),
  },
  { title: 'AuditEntry' },
);

const AuditPage = Type.Object({
  entries: Type.Array(AuditEntry),
  nextBefore: Type.Optional(Type.Integer({ description: 'Pass as before= for the next (older) page; absent on the last page' })),
});

export const auditRoutes: FastifyPluginAsyncTypebox<Pick<StoreRoutesOptions, 'store'>> = async (app, { store }) => {
  app.get(
    '/v1/audit',
    {
      schema: securedRoute('audit', 'Every change to desired state, newest first, with the record before and after', {
        querystring: AuditQuery,
        response: { 200: AuditPage },
      }),
    },
    async (request) => {
      const limit = request.query.limit ?? 100;
      const entries = store.audit(limit, request.query.before);
      const last = entries[entries.length - 1];
      return { entries, ...(entries.length === limit && last && last.id > 1 ? { nextBefore: last.id } : {}) };
    },
  );
};
