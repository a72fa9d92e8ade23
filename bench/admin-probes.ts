/**
 * The probes of bench/admin-100k.ts, in a process of their own: GET /healthz and an xDS Fetch (EDS
 * of one cluster) every 10 ms while the parent's stage runs, so the latencies are the server's and
 * not the parent's. The parent builds, sends and reads the big writes (a 1 MB body, its answer);
 * probes on its own event loop waited behind that work too, and read it as the server's.
 *
 * Driven over IPC by admin-100k.ts (forked with its tsx loader):
 *   → { start: true }                  probing begins; ← { started: true }
 *   → { stop: true }                   probing ends once the probes in flight have answered
 *   ← { healthz: [ms], fetched: [ms], ownStallMs }   ownStallMs: this process's longest loop delay
 *                                                    meanwhile, so a stalled prober shows itself;
 *     or { error }                                   the first probe that failed
 * argv: ADMIN_PORT XDS_PORT CLUSTER_NAME
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { EDS, SERVICE, XdsClient } from '../test/support/xds-client.js';

export interface ProbeResult {
  readonly healthz: number[];
  readonly fetched: number[];
  readonly ownStallMs: number;
}

if (!process.send) {
  process.stderr.write('bench/admin-probes.ts is forked by bench/admin-100k.ts, not run by hand\n');
  process.exit(2);
}
const [adminPort, xdsPort, cluster] = process.argv.slice(2);
const base = `http://127.0.0.1:${adminPort ?? ''}`;
const xds = XdsClient.forPort(Number(xdsPort));

/** The first probe that failed: reported with the results (a rejection left pending would end this process). */
let failure: string | undefined;

/** `probe`'s time, pushed onto `into`; a failure is kept, not thrown. */
async function timed(probe: () => Promise<unknown>, into: number[]): Promise<void> {
  const started = performance.now();
  try {
    await probe();
    into.push(performance.now() - started);
  } catch (err) {
    failure ??= (err as Error).message;
  }
}

const healthz = async (): Promise<void> => {
  const res = await fetch(`${base}/healthz`);
  await res.text();
  if (res.status !== 200) throw new Error(`GET /healthz: ${res.status}`);
};
const fetchEds = (): Promise<unknown> => xds.fetch(SERVICE.EDS.fetch, { node: { id: 'bench-fetch' }, type_url: EDS, resource_names: [cluster ?? ''] }, 60_000);

let running = false;
let done: Promise<ProbeResult> | undefined;

/** Both probes every 10 ms until `running` is cleared; resolves once every probe sent has answered. */
async function probeLoop(): Promise<ProbeResult> {
  const result: ProbeResult = { healthz: [], fetched: [], ownStallMs: 0 };
  const delay = monitorEventLoopDelay({ resolution: 5 });
  delay.enable();
  const pending: Promise<void>[] = [];
  while (running) {
    pending.push(timed(healthz, result.healthz), timed(fetchEds, result.fetched));
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  await Promise.all(pending);
  delay.disable();
  return { ...result, ownStallMs: delay.max / 1e6 };
}

process.on('message', (msg: { start?: boolean; stop?: boolean }) => {
  if (msg.start) {
    running = true;
    done = probeLoop();
    process.send?.({ started: true });
  } else if (msg.stop) {
    running = false;
    void done?.then((r) => process.send?.(failure === undefined ? r : { error: failure }));
  }
});
process.on('disconnect', () => {
  xds.close();
  process.exit(0);
});
// One of each first: the first Fetch loads Envoy's types and connects, the first GET its pool.
await healthz();
await fetchEds();
process.send?.({ ready: true });
