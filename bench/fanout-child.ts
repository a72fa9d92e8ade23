/**
 * What bench/fanout.ts's two forked children (fanout-server.ts, fanout-client.ts) both need: a
 * monotonic clock, their own CPU time, and their one channel to the parent (IPC).
 */

/** Milliseconds on the monotonic clock (comparable across the two children: both read the same host clock). */
export const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;

/** This process's CPU time, user and system, in ms. */
export const cpuMs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

/** A message to the parent; dropped when there is no IPC channel. */
export const send = (m: unknown): void => {
  process.send?.(m);
};
