import { inspect } from 'node:util';
import { scaled, TIME_FACTOR } from './timing.js';

export { scaled, TIME_FACTOR } from './timing.js';

export interface WaitForOptions {
  /** Human-readable description of the condition, used in the timeout error ("cluster web to have 2 hosts"). */
  what: string;
  /** Overall deadline (default 10 000 ms), multiplied by FULCRUM_TEST_TIME_FACTOR (see timing.ts). */
  timeoutMs?: number;
  /** Instead of `timeoutMs`: an absolute time (epoch ms) shared by several waits, used as given. */
  deadline?: number;
  /** Pause between attempts (default 50 ms). */
  intervalMs?: number;
}

export interface WaitForContext {
  /** 1-based number of the current attempt. */
  attempt: number;
  /**
   * Record what was observed in this attempt; the last noted value is put into
   * the timeout error (otherwise the last returned value is shown, which is
   * usually just `undefined`/`false`).
   */
  note(observed: unknown): void;
  /** Give up now: `waitFor` rejects with `reason` without further attempts (e.g. the process died). */
  abort(reason: Error): never;
}

class AbortWait {
  constructor(readonly reason: Error) {}
}

/** Thrown by `waitFor` on timeout; carries the last observation for programmatic use. */
export class WaitTimeoutError extends Error {
  constructor(
    message: string,
    readonly lastValue: unknown,
    readonly lastError: unknown,
    readonly attempts: number,
  ) {
    super(message);
    this.name = 'WaitTimeoutError';
  }
}

const TIMED_OUT: unique symbol = Symbol('timed out');

const show = (v: unknown): string => inspect(v, { depth: 6, breakLength: 120, maxArrayLength: 50, maxStringLength: 4000 });

/**
 * Poll `fn` until it yields a value other than `undefined`, `null` or `false`,
 * and return that value. An exception thrown by `fn` counts as "not yet" (e.g.
 * connection refused while a server starts) and is reported if the wait times
 * out. On timeout throws a `WaitTimeoutError` naming `what`, the elapsed time,
 * the attempt count, the last observed value and the last error.
 *
 * Tests use this instead of fixed sleeps: wait for the condition, not the clock. The
 * deadline is scaled by FULCRUM_TEST_TIME_FACTOR, so give the one a quiet machine needs.
 */
export async function waitFor<T>(
  fn: (ctx: WaitForContext) => Promise<T | undefined | null | false> | T | undefined | null | false,
  opts: WaitForOptions,
): Promise<T> {
  const started = Date.now();
  const deadline = opts.deadline ?? started + scaled(opts.timeoutMs ?? 10_000);
  const timeoutMs = deadline - started;
  const intervalMs = opts.intervalMs ?? 50;
  let attempt = 0;
  let lastValue: unknown;
  let noted = false;
  let lastError: unknown;

  for (;;) {
    attempt++;
    const ctx: WaitForContext = {
      attempt,
      note(observed: unknown) {
        noted = true;
        lastValue = observed;
      },
      abort(reason: Error): never {
        throw new AbortWait(reason);
      },
    };
    const remaining = deadline - Date.now();
    let timer: NodeJS.Timeout | undefined;
    try {
      // An attempt that hangs must not hold the wait past its deadline.
      const result = await Promise.race([
        Promise.resolve().then(() => fn(ctx)),
        new Promise<typeof TIMED_OUT>((resolve) => {
          timer = setTimeout(() => resolve(TIMED_OUT), Math.max(remaining, 1));
        }),
      ]);
      if (result === TIMED_OUT) {
        lastError = new Error(`attempt ${attempt} still pending at the deadline`);
      } else {
        if (result !== undefined && result !== null && result !== false) return result;
        if (!noted) lastValue = result;
        lastError = undefined;
      }
    } catch (err) {
      if (err instanceof AbortWait) throw err.reason;
      lastError = err;
    } finally {
      if (timer) clearTimeout(timer);
    }
    noted = false;

    const now = Date.now();
    if (now >= deadline) {
      const parts = [
        `Timed out after ${now - started} ms (${attempt} attempts) waiting for ${opts.what}.` +
          (TIME_FACTOR === 1 ? '' : ` Deadline ${timeoutMs} ms (FULCRUM_TEST_TIME_FACTOR=${TIME_FACTOR}).`),
        `Last observed value: ${show(lastValue)}`,
      ];
      if (lastError !== undefined) {
        parts.push(`Last error: ${lastError instanceof Error ? (lastError.stack ?? lastError.message) : show(lastError)}`);
      }
      throw new WaitTimeoutError(parts.join('\n'), lastValue, lastError, attempt);
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(intervalMs, Math.max(deadline - now, 0))));
  }
}
