/**
 * One row of one scenario: queueing backends, fulcrum in process (shipped tick and LRS interval
 * unless overridden), one or more real Envoys (each its own node group and listener), a seeded
 * Poisson load through each Envoy, the scenario's events on time, and the figures.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { pino } from 'pino';
import YAML from 'yaml';
import { poissonLoad, seededRandom, type PoissonLoad } from '../../examples/backends/poisson-load.js';
import type { QueueingBackend } from '../../examples/backends/queueing-backend.js';
import { startFulcrum, type Fulcrum } from '../../src/main.js';
import { startEnvoy, type EnvoyHandle } from '../../test/support/envoy.js';
import { freePort } from '../../test/support/ports.js';
import { startAgent, type Agent } from '../demo/agent.js';
import { changesPerMinute, convergence, latencyFigures, mean, overshoot, shareTimeline, windowUtilization, type RowFigures, type Sample } from './figures.js';
import { TIMING, type EventContext, type Row, type Scenario } from './scenarios.js';
import { traceLines, type TracePoint } from './event-trace.js';
import { drainBackend, joinBackends, removeBackend, startBackend, writeMembers, type Membership } from './membership.js';
import type { Explanation } from '../../src/balancing/engine/types.js';

export interface RigOptions {
  /** Time scale: 1 for full rows, less with --short. */
  readonly scale: number;
  readonly tickMs?: number;
  readonly lrsMs?: number;
  /** Also log each row's failed requests by outcome and second sent, and fulcrum's weights each second. */
  readonly detail?: boolean;
  readonly log: (line: string) => void;
}

export type RowResult = { readonly row: string; readonly figures: RowFigures } | { readonly row: string; readonly unavailable: string };

const CLUSTER = 'web';
const sleepUntil = (t0: number, s: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, t0 + s * 1000 - performance.now())));

export function configFor(s: Scenario, row: Row, ports: readonly number[], listenerPorts: readonly number[], o: RigOptions, workers = s.workers): string {
  const weights = row.weights(workers);
  return YAML.stringify({
    server: {
      logLevel: 'warn',
      ...(o.tickMs !== undefined ? { engine: { tickMs: o.tickMs } } : {}),
      ...(o.lrsMs !== undefined ? { loadReporting: { intervalMs: o.lrsMs } } : {}),
    },
    clusters: [
      {
        name: CLUSTER,
        ...s.cluster,
        ...row.cluster(workers),
        endpoints: ports.map((port, i) => ({ address: '127.0.0.1', port, weight: weights[i] ?? 1 })),
      },
    ],
    listeners: listenerPorts.map((port, i) => ({ name: `ingress-${i}`, address: '127.0.0.1', port, routes: [{ prefix: '/', cluster: CLUSTER, timeoutMs: s.routeTimeoutMs ?? 10_000 }] })),
    nodeGroups: listenerPorts.map((_p, i) => ({ nodeCluster: `edge-${i}`, listeners: [`ingress-${i}`] })),
  });
}

interface Running {
  dir: string;
  listenerPorts: number[];
  fleet: QueueingBackend[];
  /** Fleet indexes in the cluster (membership.ts). */
  members: number[];
  fulcrum?: Fulcrum;
  envoys: EnvoyHandle[];
  agent?: Agent;
  loads: PoissonLoad[];
}

async function waitForHosts(envoy: EnvoyHandle, n: number): Promise<void> {
  const deadline = performance.now() + 30_000;
  while (((await envoy.clusterStatuses())[CLUSTER]?.hosts.length ?? 0) < n) {
    if (performance.now() > deadline) throw new Error(`${envoy.name} never got the ${n} endpoints of ${CLUSTER}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function start(s: Scenario, row: Row, o: RigOptions, r: Running): Promise<string | undefined> {
  for (const workers of s.workers) {
    await startBackend({ fleet: r.fleet, meanServiceMs: s.meanServiceMs, noise: s.noise ?? 0 }, workers);
    r.members.push(r.fleet.length - 1);
  }
  for (let i = 0; i < s.envoys; i++) r.listenerPorts.push(await freePort());
  const configPath = join(r.dir, 'fulcrum.yaml');
  await writeFile(configPath, configFor(s, row, r.fleet.map((b) => b.port), r.listenerPorts, o));
  try {
    r.fulcrum = await startFulcrum({ configPath, xdsPort: 0, xdsAddress: '127.0.0.1', logger: pino({ level: 'silent' }) });
  } catch (err) {
    // The message names the config file (a temporary path) first: keep what it says about the row.
    const message = (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? '';
    return `fulcrum refused the config: ${message.replace(/^\S*fulcrum\.yaml: /, '')}`;
  }
  const xdsPort = r.fulcrum.xdsPort;
  for (let i = 0; i < s.envoys; i++) {
    const envoy = await startEnvoy({ xdsPort, mode: 'sotw', nodeId: `bench-${s.name}-${row.name}-${i}`, nodeCluster: `edge-${i}`, name: `envoy[${row.name}-${i}]` });
    r.envoys.push(envoy);
    await envoy.waitForListener(`ingress-${i}`, 30_000);
    await waitForHosts(envoy, s.workers.length);
  }
  if (row.latencyAgent) {
    r.agent = startAgent({ target: `127.0.0.1:${xdsPort}`, cluster: CLUSTER, endpoints: r.fleet.map((b) => b.key), intervalMs: 1000 });
  }
  return undefined;
}

async function stopAll(r: Running): Promise<void> {
  await Promise.all(r.loads.map((l) => l.stop()));
  r.agent?.stop();
  await Promise.all(r.envoys.map((e) => e.stop()));
  await r.fulcrum?.stop();
  await Promise.all(r.fleet.map((b) => b.close()));
  await rm(r.dir, { recursive: true, force: true });
}

export async function runRow(s: Scenario, row: Row, o: RigOptions): Promise<RowResult> {
  const r: Running = { dir: await mkdtemp(join(tmpdir(), `fulcrum-bench-${s.name}-`)), listenerPorts: [], fleet: [], members: [], envoys: [], loads: [] };
  try {
    const unavailable = await start(s, row, o, r);
    if (unavailable !== undefined) return { row: row.name, unavailable };
    return { row: row.name, figures: await measure(s, row, o, r) };
  } finally {
    await stopAll(r);
  }
}

async function measure(s: Scenario, row: Row, o: RigOptions, r: Running): Promise<RowFigures> {
  const at = (x: number): number => x * o.scale;
  const capacity = r.fleet.reduce((a, b) => a + b.capacityRps, 0);
  const samples: Sample[] = [];
  const lag = monitorEventLoopDelay({ resolution: 10 });
  lag.enable();
  const t0 = performance.now();
  for (let i = 0; i < s.envoys; i++) {
    const url = `http://127.0.0.1:${await r.envoys[i]?.waitForListener(`ingress-${i}`)}/`;
    r.loads.push(
      poissonLoad({
        url,
        rps: (capacity * s.load) / s.envoys,
        random: seededRandom(7 + i),
        onResult: (res) => {
          const backend = res.backend === undefined ? undefined : Number(res.backend);
          samples.push({ sentS: (res.sentAt - t0) / 1000, ms: res.ms, outcome: res.outcome, ...(backend !== undefined ? { backend } : {}) });
          if (res.outcome === 'ok' && backend !== undefined) r.agent?.observe(backend, res.ms);
        },
      }),
    );
  }
  const weightLog: { t: number; weights: string }[] = [];
  const trace: TracePoint[] = [];
  const sampler = setInterval(() => {
    const ex = r.fulcrum?.adaptive.explain(CLUSTER);
    const t = (performance.now() - t0) / 1000;
    if (ex) weightLog.push({ t, weights: r.fleet.map((b) => ex.explanations.get(b.key)?.integerWeight ?? 0).join(',') });
    if (o.detail === true && s.target !== undefined) traceTarget(r, r.fleet[s.target], t0, t, ex?.explanations, trace);
  }, 250);
  const m = membership(s, row, o, r);
  const ctx = eventContext(m, o, (f) => r.loads.forEach((l) => l.setRate((capacity * f) / s.envoys)));
  for (const [i, e] of s.events.entries()) {
    await sleepUntil(t0, at(e.atS));
    o.log(`    t=${((performance.now() - t0) / 1000).toFixed(1)} s: ${e.what}`);
    await e.apply(ctx);
    // The config file is watched: the oracle's static weights follow the true capacities (an
    // event that changes the members writes them itself, each backend at its capacity).
    const ideal = s.converge?.ideal;
    if (row.oracle && s.converge?.after === i && ideal && e.membership !== true) await writeMembers(m, r.members.map((j) => ideal[j] ?? 1));
  }
  const endS = at(TIMING.durationS);
  await sleepUntil(t0, endS - at(TIMING.steadyS));
  // Utilization of the backends in the cluster over the steady window (one removed has none to show).
  const steady = [...r.members];
  const steadyStart = steady.map((i) => (r.fleet[i] as QueueingBackend).busyTotals());
  await sleepUntil(t0, endS);
  const util = windowUtilization(
    steadyStart,
    steady.map((i) => (r.fleet[i] as QueueingBackend).busyTotals()),
  );
  clearInterval(sampler);
  lag.disable();
  await Promise.all(r.loads.map((l) => l.stop()));
  r.loads.length = 0;
  if (o.detail === true) {
    logDetail(o, samples, weightLog);
    for (const line of traceLines(trace, samples, s.events.map((e) => at(e.atS)))) o.log(line);
  }
  return { ...figures(s, o, samples, util, weightLog.filter((w) => w.t >= at(TIMING.warmS)), r.fleet.length), loopLagP99Ms: lag.percentile(99) / 1e6 };
}

function membership(s: Scenario, row: Row, o: RigOptions, r: Running): Membership {
  if (r.fulcrum === undefined) throw new Error('fulcrum is not running');
  return {
    fleet: r.fleet,
    members: r.members,
    dir: r.dir,
    configFor: (ports, workers) => configFor(s, row, ports, r.listenerPorts, o, workers),
    adminPort: r.fulcrum.adminPort,
    cluster: CLUSTER,
    meanServiceMs: s.meanServiceMs,
    noise: s.noise ?? 0,
  };
}

/** What events act through; a cold start's easing is a time of the scenario, scaled like its events. */
function eventContext(m: Membership, o: RigOptions, setLoad: (fraction: number) => void): EventContext {
  return {
    fleet: m.fleet,
    setLoad,
    join: (workers, cold) => joinBackends(m, workers, cold && { factor: cold.factor, easeMs: cold.easeMs * o.scale }),
    drain: (i) => drainBackend(m, i),
    remove: (i) => removeBackend(m, i),
  };
}

/** Envoy's cluster counters the trace shows: retries, retries refused by the budget, connect failures, outlier ejections. */
const TRACED_STATS = `^cluster\\.${CLUSTER}\\.(upstream_rq_retry|upstream_rq_retry_overflow|upstream_cx_connect_fail|lb_healthy_panic|outlier_detection\\.ejections_active)$`;

/** One trace point of the event's backend; Envoy's view is read asynchronously and recorded when it comes. */
function traceTarget(r: Running, b: QueueingBackend | undefined, t0: number, t: number, explanations: ReadonlyMap<string, Explanation> | undefined, trace: TracePoint[]): void {
  if (b === undefined) return;
  const ex = explanations?.get(b.key);
  const inFlight = b.inFlight;
  const all = explanations === undefined ? '' : [...explanations.values()].map((x) => x.integerWeight).join(',');
  const fulcrum = ex && { health: ex.health, weight: ex.integerWeight, ejected: ex.ejection !== undefined, errorRate: ex.inputs.errorRate, rules: ex.rules.join(','), all };
  const envoy = r.envoys[0];
  if (envoy === undefined) return;
  void Promise.all([envoy.clusterStatuses(), envoy.stats(TRACED_STATS)]).then(
    ([c, stats]) => {
      const h = c[CLUSTER]?.hosts.find((x) => x.address === b.key);
      const counters = Object.entries(stats).map(([k, v]) => `${k.replace(`cluster.${CLUSTER}.`, '')}=${v}`).join(' ');
      const readS = (performance.now() - t0) / 1000;
      trace.push({ t, inFlight, ...(fulcrum ? { fulcrum } : {}), ...(h ? { envoy: { readS, rqActive: h.rq_active, health: h.health_flags, weight: h.weight, counters: `${counters} host_cx_connect_fail=${h.cx_connect_fail} host_rq_total=${h.rq_total}` } } : {}) });
    },
    () => trace.push({ t, inFlight, ...(fulcrum ? { fulcrum } : {}) }),
  );
}

/** What --detail prints: where the failures fall in time (a death's in-flight loss, a revival's burst), and how the weights moved. */
function logDetail(o: RigOptions, samples: readonly Sample[], weightLog: readonly { t: number; weights: string }[]): void {
  const failed = new Map<string, number>();
  for (const x of samples) {
    if (x.outcome === 'ok') continue;
    const key = `${x.outcome}@${Math.floor(x.sentS)}s`;
    failed.set(key, (failed.get(key) ?? 0) + 1);
  }
  const total = [...failed.values()].reduce((a, b) => a + b, 0);
  o.log(`    failed ${total} of ${samples.length}: ${[...failed].map(([k, n]) => `${k} ${n}`).join(', ') || 'none'}`);
  // The sampler runs every 250 ms: one line per second.
  for (const w of weightLog.filter((_w, i) => i % 4 === 0)) o.log(`    weights at ${w.t.toFixed(0)} s: ${w.weights}`);
}

/** `backends`: the fleet's size at the end (those that joined included); the ideal allocation covers them all. */
function figures(s: Scenario, o: RigOptions, samples: readonly Sample[], util: readonly number[], weightLog: { t: number; weights: string }[], backends: number): Omit<RowFigures, 'loopLagP99Ms'> {
  const at = (x: number): number => x * o.scale;
  const endS = at(TIMING.durationS);
  const windowS = Math.max(2, at(3));
  const timeline = shareTimeline(samples, backends, 0, endS, windowS, 0.5);
  const conv = s.converge;
  const eventS = conv === undefined ? 0 : conv.after < 0 ? 0 : at(s.events[conv.after]?.atS ?? 0);
  const idealSum = conv?.ideal.reduce((a, b) => a + b, 0) ?? 1;
  const ideal = conv?.ideal.map((w) => w / idealSum);
  const meanUtil = mean(util);
  return {
    maxAvg: Math.max(...util) / meanUtil,
    meanUtil,
    ...latencyFigures(samples, at(TIMING.warmS)),
    convergenceS: ideal === undefined ? null : convergence(timeline, ideal, eventS),
    overshoot: ideal === undefined || s.target === undefined ? null : overshoot(timeline, s.target, ideal[s.target] ?? 0, eventS),
    weightChangesPerMin: changesPerMinute(weightLog),
  };
}
