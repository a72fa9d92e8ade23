import { AjvCompiler } from '@fastify/ajv-compiler';

/**
 * fastify compiles every route's request schema with Ajv when the server starts: about a third of
 * the admin server's start-up CPU, for routes most runs never call. This factory hands fastify the
 * same compiler (same Ajv options and pool) but compiles a route's schema on its first request.
 * The errors property fastify reads after a failed validation is forwarded from the compiled one.
 */

type BuildCompiler = ReturnType<typeof AjvCompiler>;
type Compile = ReturnType<BuildCompiler>;
type Validate = ReturnType<Compile>;

export function lazyValidators(): BuildCompiler {
  const build = AjvCompiler();
  return ((externalSchemas: Parameters<BuildCompiler>[0], options: Parameters<BuildCompiler>[1]) => {
    const compile = build(externalSchemas, options) as Compile;
    return (route: Parameters<Compile>[0]) => {
      let compiled: Validate | undefined;
      const validate = function (this: unknown, data: unknown) {
        compiled ??= compile(route);
        const result = compiled.call(this, data);
        validate.errors = compiled.errors;
        return result;
      } as Validate;
      return validate;
    };
  }) as BuildCompiler;
}
