/**
 * One run of the headline demo for one weighting policy: fulcrum (in process) → a real Envoy
 * (SotW ADS, LRS back to fulcrum) → 6 queueing backends (examples/backends/queueing-backend.ts),
 * under an open-loop Poisson load.
 * Halfway, one backend loses half its capacity. Records, every `sampleMs`, each backend's
 * utilization, Envoy's weight for it and its served rate, plus every response's latency and a
 * compact trace of fulcrum's explanations.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { pino } from 'pino';
import YAML from 'yaml';
import { startFulcrum, type Fulcrum } from '../../src/main.js';
import { poissonLoad } from '../../examples/backends/poisson-load.js';
import { startCapacityBackends, type CapacityBackends } from '../../test/support/capacity-backends.js';
import { startEnvoy, type EnvoyHandle } from '../../test/support/envoy.js';
import { freePort } from '../../test/support/ports.js';
import { processCpuMs } from '../proc-cpu.js';
import { startAgent, type Agent } from './agent.js';
import type { LatencyRecord, Tick } from './metrics.js';

export type PolicyName = 'static' | 'pid' | 'ewma' | 'blend';

export interface ScenarioOptions {
  readonly policy: PolicyName;
  /** The cluster's `weighting:` block as written in the config file. */
  readonly weighting: Record<string, unknown>;
  /** The cluster's `safety:` block, if any. */
  readonly safety?: Record<string, unknown>;
  readonly capacities: readonly number[];
  readonly baseLatencyMs: number;
  /** Offered load as a fraction of the total capacity (before the halving). */
  readonly load: number;
  readonly steadyS: number;
  readonly afterS: number;
  /** Index of the backend whose capacity is halved at `steadyS`. */
  readonly halve: number;
  readonly tickMs: number;
  readonly lrsMs: number;
  readonly sampleMs: number;
  /** Run the latency agent (gRPC reports). */
  readonly agent: boolean;
  /** The agent also reports each backend's utilization as cpu. */
  readonly agentCpu: boolean;
  readonly log: (line: string) => void;
}

/** A compact per-endpoint view of fulcrum's explanation at one tick. */
export interface TraceEntry {
  readonly t: number;
  readonly endpoints: readonly {
    readonly util?: number;
    readonly latencyMs?: number;
    readonly int: number;
    readonly raw: number;
    readonly published: number;
    readonly pidOut?: number;
    readonly pidP?: number;
    readonly pidI?: number;
    readonly ewmaMs?: number;
    readonly ewmaBonusMs?: number;
    readonly freshness: string;
    readonly rules: readonly string[];
  }[];
}

export interface ScenarioResult {
  readonly policy: PolicyName;
  readonly ticks: Tick[];
  readonly latencies: LatencyRecord[];
  readonly trace: TraceEntry[];
  readonly targetRps: number;
  readonly diagnostics: {
    readonly loopDelayP99Ms: number;
    readonly loopDelayMaxMs: number;
    /** CPU of this Node process (generator, backends, fulcrum) and of Envoy, % of one core, during the load. */
    readonly nodeCpuPct: number;
    readonly envoyCpuPct: number;
    readonly agent?: ReturnType<Agent['stats']>;
    readonly lateSamples: number;
    /** Requests sent per second over the load phase (the generator's own count). */
    readonly sentRps: number;
  };
}

const CLUSTER = 'web';

/** utime + stime of a process, in seconds (NaN once it is gone). */
function procCpuSeconds(pid: number): number {
  return processCpuMs(pid) / 1000;
}

export function configFor(o: ScenarioOptions, ports: readonly number[], listenerPort: number): string {
  return YAML.stringify({
    server: { loadReporting: { intervalMs: o.lrsMs }, engine: { tickMs: o.tickMs }, logLevel: 'warn' },
    clusters: [
      {
        name: CLUSTER,
        lbPolicy: 'ROUND_ROBIN',
        weighting: o.weighting,
        ...(o.safety ? { safety: o.safety } : {}),
        endpoints: ports.map((port) => ({ address: '127.0.0.1', port, weight: 1 })),
      },
    ],
    listeners: [{ name: 'ingress', address: '127.0.0.1', port: listenerPort, routes: [{ prefix: '/', cluster: CLUSTER, timeoutMs: 15_000 }] }],
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function runScenario(o: ScenarioOptions): Promise<ScenarioResult> {
  const dir = await mkdtemp(join(tmpdir(), `fulcrum-demo-${o.policy}-`));
  let backends: CapacityBackends | undefined;
  let fulcrum: Fulcrum | undefined;
  let envoy: EnvoyHandle | undefined;
  let agent: Agent | undefined;
  try {
    backends = await startCapacityBackends(o.capacities.map((capacityRps) => ({ capacityRps, baseLatencyMs: o.baseLatencyMs })));
    const keys = backends.list.map((b) => b.key);
    const indexOf = new Map(keys.map((k, i) => [k, i]));
    const listenerPort = await freePort();
    const configPath = join(dir, 'fulcrum.yaml');
    await writeFile(configPath, configFor(o, backends.list.map((b) => b.port), listenerPort));
    fulcrum = await startFulcrum({
      configPath,
      xdsPort: 0,
      xdsAddress: '127.0.0.1',
      logger: pino({ level: 'silent' }),
      debounce: { quietMs: 20, maxMs: 200 },
      engineTickMs: o.tickMs,
    });
    envoy = await startEnvoy({ xdsPort: fulcrum.xdsPort, mode: 'sotw', nodeId: `demo-${o.policy}`, name: `envoy[demo-${o.policy}]` });
    await envoy.waitLive();
    const port = await envoy.waitForListener('ingress');
    const url = `http://127.0.0.1:${port}/`;
    for (let tries = 0; ; tries++) {
      const hosts = (await envoy.clusterStatuses())[CLUSTER]?.hosts ?? [];
      if (hosts.length === keys.length) break;
      if (tries > 100) throw new Error(`Envoy never got the ${keys.length} endpoints of ${CLUSTER}`);
      await sleep(100);
    }

    const envoyRef = envoy;
    const fulcrumRef = fulcrum;
    const list = backends.list;
    const targetRps = o.load * o.capacities.reduce((a, b) => a + b, 0);
    const ticks: Tick[] = [];
    const latencies: LatencyRecord[] = [];
    const trace: TraceEntry[] = [];
    if (o.agent) {
      agent = startAgent({
        target: `127.0.0.1:${fulcrum.xdsPort}`,
        cluster: CLUSTER,
        endpoints: keys,
        intervalMs: o.lrsMs,
        ...(o.agentCpu ? { cpu: (i: number) => list[i]?.utilization() } : {}),
      });
    }
    const agentRef = agent;

    const loop = monitorEventLoopDelay({ resolution: 10 });
    const t0 = performance.now();
    const elapsed = (): number => (performance.now() - t0) / 1000;
    const cpu0 = process.cpuUsage();
    const envoyCpu0 = procCpuSeconds(envoy.pid);
    loop.enable();
    const gen = poissonLoad({ url, rps: targetRps, timeoutMs: 15_000, onResult: ({ backend: b, ms, outcome }) => {
      const ok = outcome === 'ok';
      const backend = b === undefined ? -1 : Number(b);
      latencies.push({ t: elapsed(), backend, ms, ok });
      if (ok && backend >= 0) agentRef?.observe(backend, ms);
    } });

    let lastCounts = backends.counts();
    let lastAt = performance.now();
    let envoyWeight: number[] = keys.map(() => Number.NaN);
    let polling = false;
    let lateSamples = 0;
    const pollEnvoy = async (): Promise<void> => {
      if (polling) {
        lateSamples++;
        return;
      }
      polling = true;
      try {
        const hosts = (await envoyRef.clusterStatuses())[CLUSTER]?.hosts ?? [];
        const next = keys.map(() => Number.NaN);
        for (const h of hosts) {
          const i = indexOf.get(h.address);
          if (i !== undefined) next[i] = h.weight;
        }
        envoyWeight = next;
      } catch {
        // Envoy busy or gone: keep the last weights
      } finally {
        polling = false;
      }
    };
    const sample = (): void => {
      const now = performance.now();
      const counts = (backends as CapacityBackends).counts();
      const dt = (now - lastAt) / 1000;
      const t = elapsed();
      ticks.push({
        t,
        util: list.map((b) => b.utilization()),
        envoyWeight: [...envoyWeight],
        rps: counts.map((c, i) => (c - (lastCounts[i] as number)) / dt),
      });
      lastCounts = counts;
      lastAt = now;
      void pollEnvoy();
      const ex = fulcrumRef.adaptive.explain(CLUSTER);
      if (ex) {
        trace.push({
          t,
          endpoints: keys.map((k) => {
            const e = ex.explanations.get(k);
            if (!e) return { int: Number.NaN, raw: Number.NaN, published: Number.NaN, freshness: 'none', rules: [] };
            return {
              ...(e.inputs.utilization !== undefined ? { util: e.inputs.utilization } : e.inputs.cpu !== undefined ? { util: e.inputs.cpu } : {}),
              ...(e.inputs.latencyMs !== undefined ? { latencyMs: e.inputs.latencyMs } : {}),
              int: e.integerWeight,
              raw: e.rawWeight,
              published: e.publishedWeight,
              ...(e.pid ? { pidOut: e.pid.output, pidP: e.pid.p, pidI: e.pid.i } : {}),
              ...(e.ewma?.estimateMs !== undefined ? { ewmaMs: e.ewma.estimateMs, ewmaBonusMs: e.ewma.bonusMs } : {}),
              freshness: e.freshness,
              rules: [...e.rules],
            };
          }),
        });
      }
    };
    const sampler = setInterval(sample, o.sampleMs);
    const halveTarget = list[o.halve];
    if (!halveTarget) throw new Error(`--halve ${o.halve}: no such backend`);
    await sleep(o.steadyS * 1000 - (performance.now() - t0));
    const before = halveTarget.capacityRps;
    halveTarget.capacityRps = before / 2;
    o.log(`  t=${elapsed().toFixed(1)} s: backend ${o.halve} capacity ${before} → ${halveTarget.capacityRps} rps`);
    await sleep((o.steadyS + o.afterS) * 1000 - (performance.now() - t0));
    clearInterval(sampler);
    const cpu = process.cpuUsage(cpu0);
    const loadS = elapsed();
    const envoyCpu = procCpuSeconds(envoy.pid) - envoyCpu0;
    loop.disable();
    const sentRps = gen.sent / loadS;
    await gen.stop();
    return {
      policy: o.policy,
      ticks,
      latencies,
      trace,
      targetRps,
      diagnostics: {
        loopDelayP99Ms: loop.percentile(99) / 1e6,
        loopDelayMaxMs: loop.max / 1e6,
        nodeCpuPct: ((cpu.user + cpu.system) / 1e6 / loadS) * 100,
        envoyCpuPct: (envoyCpu / loadS) * 100,
        ...(agent ? { agent: agent.stats() } : {}),
        lateSamples,
        sentRps,
      },
    };
  } finally {
    agent?.stop();
    await envoy?.stop();
    await fulcrum?.stop();
    await backends?.close();
    await rm(dir, { recursive: true, force: true });
  }
}
