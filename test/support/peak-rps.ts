import type { Fulcrum } from '../../src/main.js';
import { waitFor } from './wait.js';

/**
 * The highest request rate each endpoint of `cluster` was reported at (load reports, reports),
 * from now on: the newest sample may already be the idle interval after a test's calls.
 */
export function peakRps(fulcrum: Fulcrum, cluster: string): ReadonlyMap<string, number> {
  const peaks = new Map<string, number>();
  fulcrum.signals.subscribe((e) => {
    if (e.kind === 'sample' && e.cluster === cluster) peaks.set(e.key, Math.max(peaks.get(e.key) ?? 0, e.sample.rps ?? 0));
  });
  return peaks;
}

/** Waits until every one of `servers` was reported with some load in `peaks` (peakRps). */
export async function reportedLoadOfEvery(peaks: ReadonlyMap<string, number>, servers: readonly { readonly host: string; readonly port: number }[], who: string): Promise<void> {
  const keys = servers.map((s) => `${s.host}:${s.port}`);
  await waitFor(() => keys.every((k) => (peaks.get(k) ?? 0) > 0), {
    what: `${who} load reports for every endpoint (${JSON.stringify(Object.fromEntries(peaks))})`,
    timeoutMs: 30_000,
  });
}
