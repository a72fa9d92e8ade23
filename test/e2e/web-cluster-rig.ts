/**
 * The rig of the failure tests where fulcrum alone moves traffic through a real Envoy: one
 * cluster `web` under pid over the test's backends, Envoy's own outlier detection and retries
 * off, a listener `ingress` routing `/` to it, and Envoy's load reports (LRS) as the only signals.
 */
import { afterEach } from 'vitest';
import { dumpLogsOnFailure } from '../support/envoy.js';
import type { LocalServers } from '../support/local-servers.js';
import { startRig, type Rig } from '../support/rig.js';

export interface WebClusterOptions<B extends LocalServers> {
  /** Names the rig (temporary directory, Envoy, node id). */
  name: string;
  backends: () => Promise<B>;
  /** Envoy's load report interval. */
  reportIntervalMs: number;
  /** More of the cluster's settings (ejection, ...). */
  cluster?: Record<string, unknown>;
  /** More of the route's settings (timeoutMs, ...). */
  route?: Record<string, unknown>;
}

export function startWebClusterRig<B extends LocalServers>(opts: WebClusterOptions<B>): Promise<Rig<B>> {
  return startRig({
    name: opts.name,
    backends: opts.backends,
    config: ({ backends, listenerPort }) => ({
      server: { loadReporting: { intervalMs: opts.reportIntervalMs }, engine: { tickMs: 500 } },
      clusters: [
        {
          name: 'web',
          weighting: { policy: 'pid' },
          outlierDetection: { enabled: false },
          retryPolicy: { enabled: false },
          endpoints: backends.ports.map((port) => ({ address: '127.0.0.1', port })),
          ...opts.cluster,
        },
      ],
      listeners: [{ name: 'ingress', address: '127.0.0.1', port: listenerPort, routes: [{ prefix: '/', cluster: 'web', ...opts.route }] }],
    }),
    waitForListener: 'ingress',
  });
}

/** The backends' endpoint keys (`127.0.0.1:port`), as fulcrum and Envoy name them. */
export function endpointKeys(backends: LocalServers): string[] {
  return backends.ports.map((p) => `127.0.0.1:${p}`);
}

/** Envoy's view of `web`: per key, its weight and whether it is in rotation (0 and false when Envoy has no such host). */
export async function webHosts(rig: Rig<LocalServers>, keys: readonly string[]): Promise<{ weight: number; healthy: boolean }[]> {
  const hosts = (await rig.envoy.clusterStatuses())['web']?.hosts ?? [];
  return keys.map((k) => {
    const h = hosts.find((x) => x.address === k);
    return { weight: h?.weight ?? 0, healthy: h?.healthy ?? false };
  });
}

/** A load generator on the rig's listener; stopped before the rig. */
export interface Load {
  stop(): void | Promise<void>;
}

/** One test's rig, its load, and its backends' endpoint keys. */
export interface WebSetup<B extends LocalServers, L extends Load> {
  readonly rig: Rig<B>;
  readonly load: L;
  readonly keys: string[];
}

/**
 * A rig per test for the enclosing describe block: the returned function starts one with a load
 * on its listener; it is stopped after the test (load first), and Envoy's output is printed when
 * the test fails.
 */
export function webClusterPerTest<B extends LocalServers, L extends Load>(): (opts: WebClusterOptions<B>, load: (url: string) => L) => Promise<WebSetup<B, L>> {
  let current: WebSetup<B, L> | undefined;
  afterEach(async () => {
    const s = current;
    current = undefined;
    await s?.rig.stop();
  });
  dumpLogsOnFailure(() => current?.rig.envoy);
  return async (opts, load) => {
    const rig = await startWebClusterRig(opts);
    const started = load(rig.url);
    rig.onStop(() => started.stop());
    current = { rig, load: started, keys: endpointKeys(rig.backends) };
    return current;
  };
}
