/**
 * The quickstart's fleet: local backends of unequal capacity that return ORCA load
 * (examples/backends/queueing-backend.ts), the fulcrum config that balances them adaptively, and
 * the table that shows what Envoy does with fulcrum's weights.
 */
import YAML from 'yaml';
import { QueueingBackend } from '../backends/queueing-backend.js';

export const CLUSTER = 'web';
export const LISTENER = 'ingress';

export interface FleetOptions {
  /** Workers per backend: capacity is proportional (workers × 1000 / serviceMs rps). */
  readonly workers: readonly number[];
  readonly serviceMs: number;
  /** First backend port; 0 = free ports. */
  readonly basePort: number;
}

export async function startBackends(o: FleetOptions): Promise<QueueingBackend[]> {
  const backends = o.workers.map(
    (workers, i) => new QueueingBackend({ workers, meanServiceMs: o.serviceMs, name: `b${i + 1}`, host: '127.0.0.1', port: o.basePort === 0 ? 0 : o.basePort + i }),
  );
  await Promise.all(backends.map((b) => b.listen()));
  return backends;
}

/**
 * One cluster under the PID controller: it steers every backend's utilization (the ORCA
 * cpu_utilization Envoy's load reports carry) toward the fleet mean, so a backend with more
 * capacity gets a larger share. Ticks and load reports every second so the quickstart moves fast.
 */
export function fleetConfig(backends: readonly QueueingBackend[], ports: { xds: number; admin: number; listener: number }): string {
  return YAML.stringify({
    server: {
      xds: { address: '127.0.0.1', port: ports.xds },
      admin: { address: '127.0.0.1', port: ports.admin },
      loadReporting: { intervalMs: 1_000 },
      engine: { tickMs: 1_000 },
      logLevel: 'warn',
    },
    clusters: [
      {
        name: CLUSTER,
        lbPolicy: 'ROUND_ROBIN',
        weighting: { policy: 'pid', setpoint: 'mean', metric: 'cpu' },
        endpoints: backends.map((b) => ({ address: '127.0.0.1', port: b.port, weight: 1 })),
      },
    ],
    listeners: [{ name: LISTENER, address: '127.0.0.1', port: ports.listener, routes: [{ prefix: '/', cluster: CLUSTER, timeoutMs: 15_000 }] }],
  });
}

export interface Row {
  readonly name: string;
  readonly workers: number;
  readonly capacityRps: number;
  readonly utilization: number;
  readonly servedRps: number;
  /** Envoy's weight for the backend as a share of the cluster, 0..1 (NaN before Envoy has it). */
  readonly share: number;
}

/** Shares of a weight map, by backend key, in backend order. */
export function shares(backends: readonly QueueingBackend[], weights: ReadonlyMap<string, number>): number[] {
  const w = backends.map((b) => weights.get(b.key) ?? Number.NaN);
  const total = w.reduce((a, b) => a + b, 0);
  return w.map((x) => x / total);
}

const pct = (x: number): string => (Number.isFinite(x) ? `${(x * 100).toFixed(0)}%` : '-');

export function renderTable(rows: readonly Row[], elapsedS: number): string {
  const head = ['backend', 'workers', 'capacity', 'utilization', 'served', 'Envoy weight share'];
  const body = rows.map((r) => [
    r.name,
    String(r.workers),
    `${r.capacityRps.toFixed(0)} rps`,
    pct(r.utilization),
    `${r.servedRps.toFixed(0)} rps`,
    `${pct(r.share)} ${'█'.repeat(Number.isFinite(r.share) ? Math.round(r.share * 40) : 0)}`,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((row) => (row[i] ?? '').length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ');
  return [`t=${elapsedS.toFixed(0)} s`, line(head), ...body.map(line)].join('\n');
}

/**
 * Did the weights move toward capacity? True when the backend with the most capacity holds a
 * clearly larger share than an equal split, and the one with the least a clearly smaller one.
 */
export function movedTowardCapacity(capacities: readonly number[], share: readonly number[], margin = 0.05): boolean {
  const even = 1 / capacities.length;
  const most = capacities.indexOf(Math.max(...capacities));
  const least = capacities.indexOf(Math.min(...capacities));
  if (most === least) return false;
  return (share[most] ?? 0) > even + margin && (share[least] ?? 1) < even - margin;
}
