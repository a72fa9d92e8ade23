import { AjvCompiler } from '@fastify/ajv-compiler';
import { SerializerSelector } from '@fastify/fast-json-stringify-compiler';
import { loopQuiet, type LoopQuiet } from '../runtime/loop-quiet.js';
import { buildSerializer } from './serializers.js';
import { isAnsweredInSlices } from './sliced-answer.js';

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
 * ~50 ms. A Warmer collects the writes' (PUT, PATCH, POST, DELETE) schemas and, once the process
 * is ready, compiles them in the background, one per turn of the event loop, so no request waits
 * behind more than one compile and start-up pays nothing. Reads stay lazy: compiling all ~500
 * schemas takes seconds on a loaded machine and its heap would stay at rest (the RSS goal), for
 * reads whose first call paying a few milliseconds hurts nobody.
 *
 * The writes' schemas are ~0.9 s of CPU on this machine, and right after a restart is when a
 * whole fleet reconnects: warming then took that second from the proxies' initial syncs
 * (bench/RESULTS.md, "storm8"). So each compile waits until the event loop was mostly idle
 * over the gap before it; a busy loop is looked at again a poll later.
 */

/** One step of warming a schema: what is left of it is the step it returns, run at the next turn. */
export type WarmStep = () => WarmStep | undefined | void;

/** Write routes' schemas left to compile, compiled in the background once `start` is called. */
export class Warmer {
  private readonly pending: WarmStep[] = [];
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private finish: () => void = () => undefined;
  /**
   * Resolves once every step has run (or the Warmer was stopped). Start-up's compaction waits for
   * it (main.ts): the compiles promote ~10 MiB that is garbage soon after, and compacting before
   * them left those pages committed at rest (bench/RESULTS.md, "rss8").
   */
  readonly done: Promise<void> = new Promise((resolve) => (this.finish = resolve));

  constructor(private readonly loop: LoopQuiet = loopQuiet()) {}

  /** `first`: ahead of the others (the answers of big writes, whose first use matters most). */
  add(compile: WarmStep, method: unknown, first = false): void {
    if (!isWrite(method)) return;
    if (first) this.pending.unshift(compile);
    else this.pending.push(compile);
  }

  /**
   * After `delayMs` (start-up's own work first: /readyz answers before any of this runs), waits
   * for `ready()` and a quiet loop (checked every `pollMs`), then compiles one schema at a time,
   * `gapMs` apart (the stretch in which the loop's business is seen), until none is left.
   */
  start(ready: () => boolean, pollMs = 100, delayMs = 1000, gapMs = 10): void {
    const step = (): void => {
      this.timer = undefined;
      if (this.stopped) return;
      if (!ready() || !this.loop.quiet()) {
        this.loop.mark();
        return this.next(step, pollMs);
      }
      const compile = this.pending.shift();
      if (!compile) return this.finish();
      try {
        const rest = compile();
        if (rest) this.pending.unshift(rest);
      } catch {
        // A schema that does not compile fails its route's first request, with fastify's error.
      }
      this.loop.mark();
      this.next(step, gapMs);
    };
    this.loop.mark();
    this.next(step, delayMs);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.finish();
  }

  get left(): number {
    return this.pending.length;
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
        const run = (compiled ??= compile(route));
        const result: unknown = run.call(this, data);
        validate.errors = run.errors;
        // A body checked in slices (sliced-validation.ts) has its verdict, and its errors, later.
        if (result instanceof Promise)
          return result.then((ok: unknown) => {
            validate.errors = run.errors;
            return ok;
          });
        return result;
      } as Validate;
      return validate;
    };
  }) as BuildValidator;
}

type BuildSerializer = ReturnType<typeof SerializerSelector>;
type CompileSerializer = ReturnType<BuildSerializer>;
type Serialize = ReturnType<CompileSerializer>;

/**
 * The serializer compiler (fast-json-stringify, with its own copy of Ajv) is imported with the
 * module, not on the first compile as before: read file by file from node_modules it cost the
 * first /readyz 110–150 ms, while from the bundle (scripts/bundle.mjs) it is one part of a file
 * already read; and the Warmer compiles the writes' response schemas within a second of ready
 * anyway, so it was in memory at rest either way. Only the selector's pools wait for first use.
 *
 * One schema object is compiled once per plugin, whichever routes and statuses use it: fastify
 * asks for each (route, status) apart, and a cluster view's serializer (the 200 and 201 of its PUT,
 * its PATCH, its GET) took 250–370 ms to compile each time on a loaded machine (bench/admin-100k.ts).
 * `select` makes the compiler factory (tests count compiles with their own).
 *
 * fast-json-stringify is given serializerSchema(schema) (serializers.ts): no answer's schema leaves
 * it an `anyOf` to ask Ajv about (test/admin/serializer-schema.test.ts checks every answer), so a
 * serializer is one compile, one warm-up step, and no Ajv compile waits for its first document.
 * The answers of big writes (`first`: sliced-answer.ts marks them) are warmed before the others.
 */
export function lazySerializers(warmer?: Warmer, select: () => BuildSerializer = () => buildSerializer(), first: (schema: unknown) => boolean = isAnsweredInSlices): BuildSerializer {
  let build: BuildSerializer | undefined;
  const selector = (): BuildSerializer => (build ??= select());
  return (externalSchemas, options) => {
    let compile: CompileSerializer | undefined;
    const bySchema = new WeakMap<object, Serialize>();
    const keyOf = (route: Parameters<CompileSerializer>[0]): object | undefined => {
      const key: unknown = route.schema;
      return key !== null && typeof key === 'object' ? key : undefined;
    };
    const compileSchema = (route: Parameters<CompileSerializer>[0]): Serialize => {
      const key = keyOf(route);
      const known = key ? bySchema.get(key) : undefined;
      if (known) return known;
      const fresh = (compile ??= selector()(externalSchemas, options))(route);
      if (key) bySchema.set(key, fresh);
      return fresh;
    };
    return (route) => {
      let compiled: Serialize | undefined;
      const compileRoute = (): Serialize => (compiled ??= compileSchema(route));
      const key = keyOf(route);
      warmer?.add(() => void compileRoute(), route.method, key !== undefined && first(key));
      return (doc: unknown) => compileRoute()(doc);
    };
  };
}
