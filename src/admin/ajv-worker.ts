/**
 * Ajv's code generation on a worker thread, for the admin warm-up (lazy-compilers.ts).
 *
 * Compiling a write route's body schema is one task of 100–250 ms on the event loop on a loaded
 * machine (the cluster PUT/PATCH bodies: Ajv writes 164–295 KiB of code for them, bench/RESULTS.md
 * "write9"), and whatever request arrives meanwhile waits for all of it. Here the worker runs
 * fastify's own validator compiler in its documented standalone mode (@fastify/ajv-compiler's
 * StandaloneValidator: the same Ajv, formats and options), which hands back the validator as
 * module source; the main thread only evaluates that source, a few milliseconds.
 *
 * Any failure (no worker, a schema it cannot compile, the worker gone) answers undefined: the
 * caller then compiles on the main thread as before, so the worst case is today's.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/** A compiled validator as Ajv makes it: a function with the last call's `errors` on it. */
export type AjvValidate = ((data: unknown) => boolean) & { errors?: unknown };

/** What a validator is compiled from: the pool's external schemas and custom Ajv options, and the route. */
export interface ValidatorSource {
  readonly externalSchemas: unknown;
  readonly customOptions: Record<string, unknown>;
  readonly route: { readonly schema: unknown; readonly method: string; readonly url: string; readonly httpPart: string };
}

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const StandaloneValidator = require(workerData.standalone);
parentPort.on('message', ({ id, externalSchemas, customOptions, route }) => {
  let code;
  let error;
  try {
    const build = StandaloneValidator({ readMode: false, storeFunction: (_route, source) => { code = source; } });
    build(externalSchemas, { customOptions })(route);
  } catch (err) {
    error = String(err && err.message ? err.message : err);
  }
  parentPort.postMessage({ id, code, error });
});
`;

/** Resolves the compiler's package from here, so the generated code's requires (ajv's runtime, ajv-formats) resolve as fastify's own would. */
const fromCompiler = (): NodeJS.Require => {
  const here = createRequire(import.meta.url);
  return createRequire(here.resolve('@fastify/ajv-compiler'));
};

export class AjvWorker {
  private worker: Worker | undefined;
  private broken = false;
  private seq = 0;
  private readonly waiting = new Map<number, (code: string | undefined) => void>();
  private require: NodeJS.Require | undefined;

  /** The validator's module source, or undefined when it must be compiled on the main thread. */
  generate(source: ValidatorSource): Promise<string | undefined> {
    const worker = this.started();
    if (!worker) return Promise.resolve(undefined);
    const id = ++this.seq;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      try {
        worker.postMessage({ id, ...source });
      } catch {
        // A schema that cannot be cloned (a function in it): compiled on the main thread.
        this.waiting.delete(id);
        resolve(undefined);
      }
    });
  }

  /** The validator from generate()'s source (CommonJS: `module.exports = validate`), or undefined if it does not load. */
  restore(code: string): AjvValidate | undefined {
    try {
      this.require ??= fromCompiler();
      const module = { exports: {} as unknown };
      // The source is Ajv's own output for our own schemas (never client input).
      new Function('module', 'exports', 'require', code)(module, module.exports, this.require);
      return typeof module.exports === 'function' ? (module.exports as AjvValidate) : undefined;
    } catch {
      return undefined;
    }
  }

  /** Ends the thread (its ~10 MiB): the warm-up is over, or the server closes. Pending requests answer undefined. */
  close(): void {
    const worker = this.worker;
    this.worker = undefined;
    this.broken = true;
    this.settleAll();
    void worker?.terminate();
  }

  private started(): Worker | undefined {
    if (this.worker || this.broken) return this.worker;
    try {
      // A small young generation, as the main thread's (--max-semi-space-size=4): with V8's default
      // the process kept ~4-6 MiB more at rest after the worker ended (bench/memory.ts), ~1.5 with this.
      const standalone = fromCompiler().resolve('@fastify/ajv-compiler/standalone');
      const worker = new Worker(WORKER_SOURCE, { eval: true, resourceLimits: { maxYoungGenerationSizeMb: 4 }, workerData: { standalone } });
      worker.unref();
      worker.on('message', (m: { id: number; code?: string }) => this.settle(m.id, m.code));
      worker.on('error', () => this.fail());
      worker.on('exit', () => this.fail());
      this.worker = worker;
    } catch {
      this.broken = true;
    }
    return this.worker;
  }

  private settle(id: number, code: string | undefined): void {
    const resolve = this.waiting.get(id);
    this.waiting.delete(id);
    resolve?.(code);
  }

  private fail(): void {
    this.worker = undefined;
    this.broken = true;
    this.settleAll();
  }

  private settleAll(): void {
    for (const resolve of this.waiting.values()) resolve(undefined);
    this.waiting.clear();
  }
}
