import { getHeapSpaceStatistics } from 'node:v8';
import type { LoopQuiet } from './loop-quiet.js';

/**
 * Hands memory the C allocator keeps back to the kernel. glibc's malloc returns freed memory only
 * from the top of its heap; what is freed between blocks still in use stays resident. A proxy's
 * first request is ~61 KB (an Envoy lists every extension compiled in): read, copied into HTTP/2
 * data chunks and decoded, then freed between the allocations of the connections around it. At
 * 2,000 streams that left ~10-20 KiB per stream resident and unused, and a round of 2,000 proxies
 * connecting and leaving 100-130 MiB; `malloc_trim(0)` gave it back in milliseconds (26 ms for
 * 212 MiB at 8,000 streams; bench/RESULTS.md, "trim28"). Node has no binding for it, so it is
 * called through an FFI (koffi), on libuv's thread pool. The event loop can still wait on it:
 * glibc holds an arena's lock while it walks that arena, and the loop's own allocations from it
 * wait meanwhile. Hence trims only when the loop has been quiet, rarely at rest, never in a storm.
 */

/** glibc's malloc_trim(0), run off the event loop; resolves with whether memory was returned. */
export type MallocTrim = () => Promise<boolean>;

/**
 * malloc_trim from the process's C library, or why there is none to call (musl, macOS, Windows, or
 * the FFI's binary missing for the platform): trimming is then simply not done.
 */
export async function loadMallocTrim(): Promise<{ readonly trim: MallocTrim } | { readonly unavailable: string }> {
  if (process.platform !== 'linux') return { unavailable: `no glibc on ${process.platform}` };
  try {
    const koffi = (await import('koffi')).default;
    const trim = koffi.load('libc.so.6').func('int malloc_trim(size_t pad)');
    return {
      trim: () =>
        new Promise<boolean>((resolve, reject) => {
          trim.async(0, (err: unknown, returned: number) => (err ? reject(err instanceof Error ? err : new Error(String(err))) : resolve(returned === 1)));
        }),
    };
  } catch (err) {
    return { unavailable: err instanceof Error ? err.message : String(err) };
  }
}

/** V8's old generation in use (bytes): what NativeMemoryTrimmerOptions.oldGenerationUsed reads in a served process. */
export function oldGenerationUsed(): number {
  return getHeapSpaceStatistics().find((space) => space.space_name === 'old_space')?.space_used_size ?? 0;
}

/** What one trim did, for the log and the metrics. */
export interface Trimmed {
  /** Resident memory before minus after (bytes; negative when something allocated meanwhile). */
  readonly returnedBytes: number;
  readonly ms: number;
  /**
   * Why it ran: resident memory grew since the last trim, V8 collected old objects (native memory
   * they held is freed with them: a departed connection's HTTP/2 session), or the interval passed.
   */
  readonly reason: 'growth' | 'collected' | 'interval';
  /** The interval until the next trim without growth (ms): it doubles while trims return little. */
  readonly nextIntervalMs: number;
}

export interface NativeMemoryTrimmerOptions {
  readonly trim: MallocTrim;
  /** Resident set size, bytes (process.memoryUsage.rss). */
  readonly rss: () => number;
  /**
   * V8's old generation in use, bytes. It falls only in a full collection: proxies that left are
   * freed there, and with them their native memory (nghttp2's session, ~23 KiB each), which
   * nothing else signals: resident memory does not fall when glibc keeps what is freed.
   */
  readonly oldGenerationUsed: () => number;
  /**
   * Proxies connected now (discovery streams). When many have left since the last trim, the next
   * fall of the old generation prompts a trim even after one that returned little (see due()).
   */
  readonly proxies?: () => number;
  /** Whether the event loop was mostly idle since the last check: a trim waits out storms and bursts. */
  readonly quiet: LoopQuiet;
  readonly now: () => number;
  /** How often to look (ms). */
  readonly checkMs?: number;
  /** Growth of resident memory, or a fall of the old generation, since the last trim that is worth one at the next quiet check (bytes). */
  readonly growthBytes?: number;
  /**
   * A trim at the first quiet check after this long without one (ms): memory freed without
   * growth (proxies leaving) is otherwise kept until something grows. Doubled after each trim
   * that returned less than `growthBytes / 8`, up to `maxIntervalMs`; back to this after one
   * that returned more.
   */
  readonly intervalMs?: number;
  readonly maxIntervalMs?: number;
  readonly onTrimmed?: (t: Trimmed) => void;
  /** A trim failed: the trimmer stops (the FFI is broken; it would fail again). */
  readonly onError?: (err: unknown) => void;
}

export const TRIM_CHECK_MS = 5_000;
/** 8 MiB: below that, a trim's few milliseconds on the allocator's lock are not worth it. */
export const TRIM_GROWTH_BYTES = 8 * 1024 * 1024;
export const TRIM_INTERVAL_MS = 15_000;
/** Proxies gone since the last trim that re-enable a trim on collection: ~8 MiB of their sessions (~23 KiB each) and buffers. */
export const TRIM_DEPARTED_PROXIES = 256;
export const TRIM_MAX_INTERVAL_MS = 300_000;

/**
 * Trims when the event loop was quiet since the last check and, since the last trim, resident
 * memory grew by `growthBytes`, or V8's old generation fell by as much from its peak, or the
 * interval passed; the first quiet check after start trims (start-up's own garbage). One trim at
 * a time. A component: start() and stop().
 */
export class NativeMemoryTrimmer {
  private timer: ReturnType<typeof setInterval> | undefined;
  private running: Promise<void> | undefined;
  /**
   * Resident memory after the last trim, when it ended, and whether it returned little (then a
   * fall of the old generation no longer prompts one: due()); undefined before the first.
   */
  private last: { readonly rss: number; readonly at: number; readonly little: boolean } | undefined;
  private intervalMs: number;
  private failed = false;
  /** The most old generation in use seen at a check since the last trim. */
  private oldPeak = 0;
  /** The most proxies seen at a check since the last trim. */
  private proxyPeak = 0;
  /** TRIM_DEPARTED_PROXIES of them left, and no trim on collection since (see due()). */
  private departed = false;

  constructor(private readonly options: NativeMemoryTrimmerOptions) {
    this.intervalMs = options.intervalMs ?? TRIM_INTERVAL_MS;
  }

  start(): void {
    if (this.timer !== undefined) return;
    this.options.quiet.mark();
    this.timer = setInterval(() => void this.check(), this.options.checkMs ?? TRIM_CHECK_MS);
    this.timer.unref();
  }

  /** Stops looking; waits for a trim in flight. */
  async stop(): Promise<void> {
    this.stopTimer();
    await this.running;
  }

  /** One look (the timer's): trims if it is due and the loop was quiet since the previous look. */
  check(): Promise<void> {
    if (this.running !== undefined) return this.running;
    if (this.failed) return Promise.resolve();
    const old = this.options.oldGenerationUsed();
    if (old > this.oldPeak) this.oldPeak = old;
    this.noteProxies(old);
    const quiet = this.options.quiet.quiet();
    this.options.quiet.mark();
    const reason = quiet ? this.due(old) : undefined;
    if (reason === undefined) return Promise.resolve();
    this.running = this.run(reason).finally(() => {
      this.running = undefined;
      this.options.quiet.mark();
    });
    return this.running;
  }

  /**
   * Growth is self-limiting (memory cannot grow forever); a falling old generation is not: steady
   * pushes promote garbage that each full collection frees, a sawtooth that would prompt a trim
   * every few seconds for nothing. So after a trim that returned little, only growth and the
   * (doubling) interval prompt one, until a trim returns more again, or until many proxies left:
   * the collection of their objects frees their native memory, which the interval (up to five
   * minutes by then) would otherwise keep that long (290 MiB after 10,000 Delta streams left,
   * bench/RESULTS.md "trimgone49"). That re-enables one trim on collection, not the sawtooth's.
   */
  private due(old: number): Trimmed['reason'] | undefined {
    const { last } = this;
    if (last === undefined) return 'interval';
    const worth = this.options.growthBytes ?? TRIM_GROWTH_BYTES;
    if (this.options.rss() - last.rss >= worth) return 'growth';
    if ((!last.little || this.departed) && this.oldPeak - old >= worth) return 'collected';
    if (this.options.now() - last.at >= this.intervalMs) return 'interval';
    return undefined;
  }

  private async run(reason: Trimmed['reason']): Promise<void> {
    const { rss, now } = this.options;
    const before = rss();
    const started = now();
    try {
      await this.options.trim();
    } catch (err) {
      this.failed = true;
      this.stopTimer();
      this.options.onError?.(err);
      return;
    }
    const after = rss();
    const little = before - after < (this.options.growthBytes ?? TRIM_GROWTH_BYTES) / 8;
    this.last = { rss: after, at: now(), little };
    this.oldPeak = this.options.oldGenerationUsed();
    this.proxyPeak = this.options.proxies?.() ?? 0;
    // A departure waits for the collection of the proxies' objects: a trim for growth or the
    // interval before it found their native memory still held (in bench/memory.ts a trim for
    // growth came first in 7 of 8 runs after a fleet left: "trimgone49").
    if (reason === 'collected') this.departed = false;
    this.intervalMs = this.nextInterval(little);
    this.options.onTrimmed?.({ returnedBytes: before - after, ms: this.last.at - started, reason, nextIntervalMs: this.intervalMs });
  }

  /**
   * Notes TRIM_DEPARTED_PROXIES proxies gone since the most seen after the last trim. From then on
   * only what V8 collects counts (the peak restarts at `old`): their objects, not the garbage of an
   * earlier sawtooth, which would prompt the trim before they are collected.
   */
  private noteProxies(old: number): void {
    const open = this.options.proxies?.();
    if (open === undefined) return;
    if (open > this.proxyPeak) this.proxyPeak = open;
    if (this.departed || this.proxyPeak - open < TRIM_DEPARTED_PROXIES) return;
    this.departed = true;
    this.oldPeak = old;
  }

  /** At rest trims return little: each such one doubles the interval (a few heap walks an hour, not hundreds). */
  private nextInterval(little: boolean): number {
    const base = this.options.intervalMs ?? TRIM_INTERVAL_MS;
    if (!little) return base;
    return Math.min(this.intervalMs * 2, Math.max(base, this.options.maxIntervalMs ?? TRIM_MAX_INTERVAL_MS));
  }

  private stopTimer(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
