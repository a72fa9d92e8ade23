/**
 * Every long-lived part of fulcrum (store, sources, weights, publisher, servers) is a Component:
 * started once, stopped once. A Lifecycle starts components in order and stops the started ones
 * in reverse, so teardown has exactly one path, whether after a failed start or at shutdown.
 */
export interface Component {
  /** For logs: which part failed to start or stop. */
  readonly name: string;
  start(): void | Promise<void>;
  stop(): void | Promise<void>;
}

/** A component from any object with start and stop methods (the methods keep their `this`). */
export function component(name: string, part: { start(): unknown; stop(): unknown }): Component {
  return {
    name,
    start: async () => void (await part.start()),
    stop: async () => void (await part.stop()),
  };
}

export type StopErrorHandler = (name: string, err: unknown) => void;

export class Lifecycle {
  private readonly started: Component[] = [];

  /** Stop errors are reported here and do not interrupt the teardown of the other components. */
  constructor(private readonly onStopError: StopErrorHandler) {}

  /**
   * Starts the components in order. If one fails, every component this lifecycle started (these
   * and earlier ones) is stopped in reverse, then the start error is rethrown.
   */
  async start(...components: readonly Component[]): Promise<void> {
    for (const c of components) {
      try {
        await c.start();
      } catch (err) {
        await this.stop();
        throw err;
      }
      this.started.push(c);
    }
  }

  /** Runs `build`; if it throws, stops what was started and rethrows (construction between starts). */
  async guard<T>(build: () => T | Promise<T>): Promise<T> {
    try {
      return await build();
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  /** Stops every started component, last started first. Safe to call more than once. */
  async stop(): Promise<void> {
    for (let c = this.started.pop(); c; c = this.started.pop()) {
      try {
        await c.stop();
      } catch (err) {
        this.onStopError(c.name, err);
      }
    }
  }

  /** Names of the running components, in start order. */
  get running(): readonly string[] {
    return this.started.map((c) => c.name);
  }
}
