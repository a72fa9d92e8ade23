import { createRequire } from 'node:module';
import { AjvCompiler } from '@fastify/ajv-compiler';
import type { SerializerSelector } from '@fastify/fast-json-stringify-compiler';

/**
 * fastify compiles every route's request schema (Ajv) and response schema (fast-json-stringify)
 * when the server starts: about a third of the admin server's start-up CPU, for routes most runs
 * never call. These factories hand fastify its own compilers (same options, same pools) but
 * compile a route's schema on its first request. The `errors` fastify reads after a failed
 * validation are forwarded from the compiled validator. With a custom validator compiler fastify
 * no longer lower-cases header schemas itself: header names in route schemas are written in
 * lower case (as they are: 'if-match').
 */

type BuildValidator = ReturnType<typeof AjvCompiler>;
type CompileValidator = ReturnType<BuildValidator>;
type Validate = ReturnType<CompileValidator>;

/** `build`: the eager compiler factory to defer (default fastify's own; app.ts passes validators.ts's). */
export function lazyValidators(build: BuildValidator = AjvCompiler()): BuildValidator {
  return ((externalSchemas: Parameters<BuildValidator>[0], options: Parameters<BuildValidator>[1]) => {
    const compile = build(externalSchemas, options) as CompileValidator;
    return (route: Parameters<CompileValidator>[0]) => {
      let compiled: Validate | undefined;
      const validate = function (this: unknown, data: unknown) {
        compiled ??= compile(route);
        const result = compiled.call(this, data);
        validate.errors = compiled.errors;
        return result;
      } as Validate;
      return validate;
    };
  }) as BuildValidator;
}

type BuildSerializer = ReturnType<typeof SerializerSelector>;
type CompileSerializer = ReturnType<BuildSerializer>;

const require = createRequire(import.meta.url);

/**
 * The serializer compiler itself is loaded on the first compile too: fast-json-stringify brings
 * its own copy of Ajv (and ajv-formats), ~1 MiB of heap and ~15 ms of start-up that a run whose
 * first response is a probe or a scrape (no response schema compiled) does not need.
 */
export function lazySerializers(): BuildSerializer {
  let build: BuildSerializer | undefined;
  const selector = (): BuildSerializer =>
    (build ??= (require('@fastify/fast-json-stringify-compiler') as { SerializerSelector: typeof SerializerSelector }).SerializerSelector());
  return (externalSchemas, options) => {
    let compile: CompileSerializer | undefined;
    return (route) => {
      let compiled: ReturnType<CompileSerializer> | undefined;
      return (doc: unknown) => (compiled ??= (compile ??= selector()(externalSchemas, options))(route))(doc);
    };
  };
}
