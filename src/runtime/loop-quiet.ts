import { performance, type EventLoopUtilization } from 'node:perf_hooks';

/**
 * Whether the event loop has been mostly idle over a stretch of time: background work that can
 * wait (warming caches) asks this before each piece, so it does not take turns from work that
 * cannot (a restarted control plane's reconnecting fleet, whose initial syncs fill the loop).
 */
export interface LoopQuiet {
  /** Starts a new stretch (after the caller's own work, which is not to count against it). */
  mark(): void;
  /** Whether the loop was busy for at most the threshold's share of the stretch since `mark`. */
  quiet(): boolean;
}

/** Node's event-loop utilization (time in callbacks over time since `mark`, idle polling excluded). */
export function loopQuiet(threshold = 0.5, read: (from?: EventLoopUtilization) => EventLoopUtilization = (from) => performance.eventLoopUtilization(from)): LoopQuiet {
  let from = read();
  return {
    mark: () => {
      from = read();
    },
    quiet: () => read(from).utilization <= threshold,
  };
}
