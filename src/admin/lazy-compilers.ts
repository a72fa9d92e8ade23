import { AjvCompiler } from '@fastify/ajv-compiler';
import { SerializerSelector } from '@fastify/fast-json-stringify-compiler';

/**
 * fastify compiles every route's request schema (Ajv) and response schema (fast-json-stringify)
 * when the server starts: about a third of the admin server's start-up CPU, for routes most runs
 * never call. These factories hand fastify its own compilers (same options, same pools) but
 * compile a route's schema on its first request. The `errors` fastify reads after a failed
 * validation are forwarded from the compiled validator. With a custom validator compiler fastify
 * no longer lower-cases header schemas itself: header names in route schemas are written in
 * lower case (as they are: 'if-match').
 *
 * Deferred is not free: the first PUT after start paid ~230 ms of compiling, the first PATCH
 * ~50 ms. A Warmer collects what is still uncompiled and, once the process is ready, compiles it
 * in the background, one schema per turn of the event loop, so no request waits behind more
 * than one compile and start-up pays nothing. There are ~500 (each route's parts and status
 * codes) and they take seconds on a loaded machine: the writes' (PUT, PATCH, POST, DELETE) go first.
 */

/** Schemas left to compile, compiled in the background once `start` is called. */
export class Warmer {
  /** Writes' schemas, then the rest. */
  private readonly pending: [(() => void)[], (() => void)[]] = [[], []];
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  add(compile: () => void, method: unknown): void {
    this.pending[isWrite(method) ? 0 : 1].push(compile);
  }

  /**
   * After `delayMs` (start-up's own work first: /readyz answers before any of this runs), waits
   * for `ready()` (checked every `pollMs`), then compiles one schema per turn until none is left.
   */
  start(ready: () => boolean, pollMs = 100, delayMs = 1000): void {
    const step = (): void => {
      this.timer = undefined;
      if (this.stopped) return;
      if (!ready()) return this.next(step, pollMs);
      const compile = this.pending[0].shift() ?? this.pending[1].shift();
      if (!compile) return;
      try {
        compile();
      } catch {
        // A schema that does not compile fails its route's first request, with fastify's error.
      }
      this.next(step, 0);
    };
    this.next(step, delayMs);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  get left(): number {
    return this.pending[0].length + this.pending[1].length;
  }

  private next(step: () => void, ms: number): void {
    this.timer = setTimeout(step, ms);
    this.timer.unref();
  }
}

const isWrite = (method: unknown): boolean => [method].flat().some((m) => m !== 'GET' && m !== 'HEAD');

type BuildValidator = ReturnType<typeof AjvCompiler>;
type CompileValidator = ReturnType<BuildValidator>;
type Validate = ReturnType<CompileValidator>;

/** `build`: the eager compiler factory to defer (default fastify's own; app.ts passes validators.ts's). */
export function lazyValidators(build: BuildValidator = AjvCompiler(), warmer?: Warmer): BuildValidator {
  return ((externalSchemas: Parameters<BuildValidator>[0], options: Parameters<BuildValidator>[1]) => {
    const compile = build(externalSchemas, options) as CompileValidator;
    return (route: Parameters<CompileValidator>[0]) => {
      let compiled: Validate | undefined;
      warmer?.add(() => void (compiled ??= compile(route)), route.method);
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

export function lazySerializers(warmer?: Warmer): BuildSerializer {
  const build = SerializerSelector();
  return (externalSchemas, options) => {
    const compile: CompileSerializer = build(externalSchemas, options);
    return (route) => {
      let compiled: ReturnType<CompileSerializer> | undefined;
      warmer?.add(() => void (compiled ??= compile(route)), route.method);
      return (doc: unknown) => (compiled ??= compile(route))(doc);
    };
  };
}
