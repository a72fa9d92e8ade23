import type { Watcher } from 'etcd3';

/**
 * How long a watch stream may take to come back after it broke. Its member hung (keepalive pings
 * found it silent: etcd-client.ts), the stream is opened again on a member etcd3 picks at random;
 * when that is the hung one again, grpc-js waits for its HTTP/2 SETTINGS with no deadline (a hung
 * process still completes TCP handshakes), and the replica's view stayed stale until the member
 * came back: a third of the time in a three-member test.
 */
export const REOPEN_AFTER_MS = 10_000;

/** The part of etcd3's (1.1.2) watch manager this reaches: one stream for all of a client's watchers. */
interface WatchManagerInternals {
  readonly state?: number;
  handleError?(err: Error): void;
}
/** etcd3's WatchManager state while it holds a stream (State.Connected). */
const CONNECTED = 2;

/**
 * Opens `watcher`'s stream again when, disconnected, it is not connected again within `afterMs`:
 * its manager is told the stream failed, which ends it and opens another after its back-off
 * (again, until one connects). Through etcd3's internals, which offer no other way to end a
 * stream that never errs (watch-reopen.test.ts checks them).
 */
export function reopenWhenStuck(watcher: Watcher, afterMs = REOPEN_AFTER_MS): void {
  let timer: NodeJS.Timeout | undefined;
  const stop = (): void => {
    clearTimeout(timer);
    timer = undefined;
  };
  const arm = (): void => {
    stop();
    timer = setTimeout(() => {
      const manager = (watcher as unknown as { manager?: WatchManagerInternals }).manager;
      // Idle (waiting out its back-off) or connecting: it is on its way already.
      if (manager?.state === CONNECTED) manager.handleError?.(new Error(`watch stream not connected again within ${afterMs} ms: opening another`));
      arm();
    }, afterMs);
    timer.unref();
  };
  watcher.on('disconnected', arm);
  watcher.on('connected', stop);
  watcher.on('end', stop);
}
