import { SerializerSelector } from '@fastify/fast-json-stringify-compiler';
import type { PrebuiltFinder } from './prebuilt-code.js';
import { serializerSchema } from './serializer-schema.js';
import { slicedAnswerItem } from './sliced-answer.js';

type BuildSerializer = ReturnType<typeof SerializerSelector>;
type CompileSerializer = ReturnType<BuildSerializer>;
type Serialize = ReturnType<CompileSerializer>;

/**
 * fastify's serializer compiler (fast-json-stringify), given each answer's serializerSchema()
 * (no `anyOf` left for Ajv to decide), except that a serializer `npm run build` made ahead is
 * taken from `prebuilt` (prebuilt-code.ts), by that schema and the options; only what it lacks is
 * compiled here. A compile with a `mode` of its own (fast-json-stringify's debug or standalone
 * build) is never taken from the build.
 */
export const buildSerializer =
  (prebuilt?: PrebuiltFinder, select: () => BuildSerializer = SerializerSelector): BuildSerializer =>
  (externalSchemas, options) => {
    let compile: CompileSerializer | undefined;
    const asIs = (options as { mode?: unknown } | undefined)?.mode !== undefined;
    const made = (asked: Parameters<CompileSerializer>[0]): Serialize => {
      const route = { ...asked, schema: serializerSchema(asked.schema) };
      const found = asIs ? undefined : prebuilt?.find({ kind: 'serializer', externalSchemas, options: options ?? {}, route });
      if (found) return found as Serialize;
      return (compile ??= select()(externalSchemas, options))(route);
    };
    return (route) => {
      // The build's recorder must see the item serializer a big answer asks for on first use (sliced-answer.ts).
      const item = prebuilt?.eager ? slicedAnswerItem(route.schema) : undefined;
      if (item) made({ ...route, schema: item });
      return made(route);
    };
  };
