/**
 * The probes of bench/admin-100k.ts: GET /healthz and an xDS Fetch (EDS of one cluster) every 10 ms
 * while a stage runs. admin-100k forks this file so that the latencies are the server's and not its
 * own: it builds, sends and reads the big writes (a 1 MB body, its answer), and probes on its own
 * event loop waited behind that work too. With `--probes here` it runs the same `Probes` itself.
 *
 * Forked, it is driven over IPC:
 *   → { start: true }                  probing begins; ← { started: true }
 *   → { stop: true }                   probing ends once the probes in flight have answered
 *   ← { healthz: [ms], fetched: [ms], ownStallMs }   ownStallMs: this process's longest loop delay
 *                                                    meanwhile, so a stalled prober shows itself;
 *                                                    and error: the first probe that failed, if any
 * argv: ADMIN_PORT XDS_PORT CLUSTER_NAME
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { EDS, SERVICE, XdsClient } from '../test/support/xds-client.js';

export interface ProbeResult {
  readonly healthz: number[];
  readonly fetched: number[];
  readonly ownStallMs: number;
  /** The first probe that failed (a rejection left pending across a timer would end the process). */
  readonly error?: string;
}

/** Both probes every 10 ms between `start()` and `stop()`, on this process's event loop. */
export class Probes {
  private readonly xds: XdsClient;
  private running = false;
  private done: Promise<ProbeResult> | undefined;

  constructor(
    private readonly adminBase: string,
    xdsPort: number,
    private readonly cluster: string,
  ) {
    this.xds = XdsClient.forPort(xdsPort);
  }

  /** One of each, untimed: the first Fetch loads Envoy's types and connects, the first GET its pool. */
  async warm(): Promise<void> {
    await this.healthz();
    await this.fetchEds();
  }

  start(): void {
    this.running = true;
    this.done = this.loop();
  }

  /** Resolves once every probe sent has answered. */
  stop(): Promise<ProbeResult> {
    this.running = false;
    return this.done ?? Promise.resolve({ healthz: [], fetched: [], ownStallMs: 0 });
  }

  close(): void {
    this.xds.close();
  }

  private async loop(): Promise<ProbeResult> {
    const healthz: number[] = [];
    const fetched: number[] = [];
    let error: string | undefined;
    const timed = async (probe: () => Promise<unknown>, into: number[]): Promise<void> => {
      const started = performance.now();
      try {
        await probe();
        into.push(performance.now() - started);
      } catch (err) {
        error ??= (err as Error).message;
      }
    };
    const delay = monitorEventLoopDelay({ resolution: 5 });
    delay.enable();
    const pending: Promise<void>[] = [];
    while (this.running) {
      pending.push(
        timed(() => this.healthz(), healthz),
        timed(() => this.fetchEds(), fetched),
      );
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await Promise.all(pending);
    delay.disable();
    return { healthz, fetched, ownStallMs: delay.max / 1e6, ...(error === undefined ? {} : { error }) };
  }

  private async healthz(): Promise<void> {
    const res = await fetch(`${this.adminBase}/healthz`);
    await res.text();
    if (res.status !== 200) throw new Error(`GET /healthz: ${res.status}`);
  }

  private fetchEds(): Promise<unknown> {
    return this.xds.fetch(SERVICE.EDS.fetch, { node: { id: 'bench-fetch' }, type_url: EDS, resource_names: [this.cluster] }, 60_000);
  }
}

/** Forked by admin-100k: the probes, driven over IPC. */
async function serveOverIpc(send: (msg: object) => void): Promise<void> {
  const [adminPort, xdsPort, cluster] = process.argv.slice(2);
  const probes = new Probes(`http://127.0.0.1:${adminPort ?? ''}`, Number(xdsPort), cluster ?? '');
  process.on('message', (msg: { start?: boolean; stop?: boolean }) => {
    if (msg.start) {
      probes.start();
      send({ started: true });
    } else if (msg.stop) void probes.stop().then(send);
  });
  process.on('disconnect', () => {
    probes.close();
    process.exit(0);
  });
  await probes.warm();
  send({ ready: true });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const send = process.send?.bind(process);
  if (!send) {
    process.stderr.write('bench/admin-probes.ts is forked by bench/admin-100k.ts, not run by hand\n');
    process.exit(2);
  }
  await serveOverIpc(send);
}
