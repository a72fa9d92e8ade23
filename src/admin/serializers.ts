import { SerializerSelector } from '@fastify/fast-json-stringify-compiler';
import type { PrebuiltFinder } from './prebuilt-code.js';
import { slicedAnswerItem } from './sliced-answer.js';

type BuildSerializer = ReturnType<typeof SerializerSelector>;
type CompileSerializer = ReturnType<BuildSerializer>;
type Serialize = ReturnType<CompileSerializer>;

/**
 * fastify's serializer compiler (fast-json-stringify), except that an answer's serializer
 * `npm run build` made ahead is taken from `prebuilt` (prebuilt-code.ts), by schema and options;
 * only what it lacks is compiled here. fast-json-stringify's debug build (what lazySerializers'
 * warm steps ask for, `mode` set) is never prebuilt.
 */
export const buildSerializer =
  (prebuilt?: PrebuiltFinder, select: () => BuildSerializer = SerializerSelector): BuildSerializer =>
  (externalSchemas, options) => {
    let compile: CompileSerializer | undefined;
    const asIs = (options as { mode?: unknown } | undefined)?.mode !== undefined;
    const made = (route: Parameters<CompileSerializer>[0]): Serialize => {
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
