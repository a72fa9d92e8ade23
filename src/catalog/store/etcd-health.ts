/**
 * Whether the etcd store can take writes now. A linearizable read every `intervalMs` needs a
 * quorum, so it fails when etcd is unreachable or has lost its leader (two failures in a row mark
 * the store down); a write that fails for the same reasons marks it down at once. Writes are refused (503) while down, without waiting
 * for a timeout each; the next successful probe brings them back, no restart needed.
 */
import type { StoreHealth } from './catalog-store.js';

export interface HealthProbe {
  /** Resolves if etcd answered a quorum read within the deadline. */
  (deadline: Date): Promise<unknown>;
}

export class EtcdHealth {
  private state: StoreHealth = { writable: false, reason: 'not connected to etcd yet' };
  private timer: NodeJS.Timeout | undefined;
  private probing = false;
  private started = false;
  private lastOk: number | undefined;
  /** Probes failed in a row: one is not enough to refuse writes (a member just died, its connection is being replaced). */
  private failures = 0;

  constructor(
    private readonly probe: HealthProbe,
    private readonly options: { readonly intervalMs: number; readonly timeoutMs: number; readonly onChange?: (h: StoreHealth) => void },
  ) {}

  get current(): StoreHealth {
    return this.state;
  }

  start(): void {
    this.timer = setInterval(() => void this.check(), this.options.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  up(): void {
    this.lastOk = Date.now();
    this.set({ writable: true });
  }

  down(cause: string): void {
    const since = this.lastOk === undefined ? '' : ` (last answer ${((Date.now() - this.lastOk) / 1000).toFixed(1)} s ago)`;
    this.set({ writable: false, reason: `etcd unreachable or without quorum: ${cause}${since}` });
  }

  /** One probe now (also what the timer runs). */
  async check(): Promise<void> {
    if (this.probing) return;
    this.probing = true;
    try {
      await answeredWithin(this.probe(new Date(Date.now() + this.options.timeoutMs)), this.options.timeoutMs);
      this.failures = 0;
      this.up();
    } catch (err) {
      if (++this.failures >= 2) this.down(errorText(err));
    } finally {
      this.probing = false;
    }
  }

  private set(next: StoreHealth): void {
    // The first answer is the start, not a recovery: nothing to report.
    const changed = next.writable !== this.state.writable && this.started;
    this.state = next;
    this.started = true;
    if (changed) this.options.onChange?.(next);
  }
}

/**
 * The probe's answer, or a failure once `ms` have passed. The etcd client retries a call on
 * another member after a back-off pause (etcd-client.ts), and stops only at the first attempt
 * made after the probe's deadline, so the probe would otherwise answer up to a pause late.
 */
function answeredWithin<T>(answer: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  answer.catch(() => undefined); // a late failure is already counted as this one
  return Promise.race([answer, late]).finally(() => clearTimeout(timer));
}

export function errorText(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? 'unknown error';
}
