/**
 * What a load report's flow sample says (EndpointState.flow: rps sent, successes and errors
 * finished per second, in progress now, and the same proxies' in-progress count and completions on
 * the endpoint's peers), read alike by the stall rule (stall.ts), the backlog drain (backlog.ts)
 * and a saturated endpoint's load (pid.ts offeredLoad).
 */
import type { Sample } from '../types.js';

/** Requests it finished per second, answered or failed. */
export const finishedOf = (x: Sample): number => (x.successes ?? 0) + (x.errors ?? 0);

/** Its peers' time in the system (s) by Little's law: their in-progress count over their completions per second; NaN without completions. */
export function peersTimeS(x: Sample): number {
  const completions = x.peerCompletions ?? 0;
  return completions > 0 ? (x.peerInflight ?? 0) / completions : Number.NaN;
}
