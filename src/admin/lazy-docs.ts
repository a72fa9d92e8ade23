import type { StaticDocumentSpec } from '@fastify/swagger';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import Fastify from 'fastify';
import { errorBody } from './errors.js';

/**
 * The Swagger UI at /docs, built on its first request. @fastify/swagger-ui registers
 * @fastify/static (and with it send, mime, glob) and reads its assets as it is registered: 7–8 MiB
 * of RSS at rest and start-up time for a page most runs never open. So /docs and /docs/* are
 * answered by a second, private fastify instance created on the first visit, holding the UI over
 * a static copy of this app's OpenAPI document; requests are passed to it with `inject` (no socket)
 * and its answer is sent back as it is. Auth and the common headers stay with the admin app.
 */

const PREFIX = '/docs';
/** Headers the admin app's own reply computes again (length, framing, connection). */
const HOP_BY_HOP = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive', 'date']);

async function buildDocsApp(app: FastifyInstance): Promise<FastifyInstance> {
  const [{ default: swagger }, { default: swaggerUi }] = await Promise.all([import('@fastify/swagger'), import('@fastify/swagger-ui')]);
  const docs = Fastify({ logger: false });
  // The document is OpenAPI 3.0.3 (openapi.ts); swagger() is typed to return 3.1 as well.
  const document = app.swagger() as StaticDocumentSpec['document'];
  await docs.register(swagger, { mode: 'static', specification: { document } });
  await docs.register(swaggerUi, { routePrefix: PREFIX });
  await docs.ready();
  return docs;
}

export async function lazyDocsRoutes(app: FastifyInstance): Promise<void> {
  let docs: Promise<FastifyInstance> | undefined;
  const forward = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    docs ??= buildDocsApp(app).catch((err: unknown) => {
      docs = undefined;
      throw err;
    });
    // GET for HEAD too: fastify's HEAD route runs this handler and drops the body itself.
    const res = await (await docs).inject({ method: 'GET', url: request.url, headers: { ...request.headers } });
    // What the UI does not have gets the admin API's own 404.
    if (res.statusCode === 404) return reply.code(404).send(errorBody(404, `no route ${request.method} ${request.url.split('?')[0]?.slice(0, 256) ?? ''}`));
    for (const [name, value] of Object.entries(res.headers)) if (!HOP_BY_HOP.has(name) && value !== undefined) reply.header(name, value);
    reply.code(res.statusCode);
    return res.rawPayload.length > 0 ? reply.send(res.rawPayload) : reply.send();
  };
  for (const url of [PREFIX, `${PREFIX}/*`]) app.get(url, { schema: { hide: true } }, forward);
}
