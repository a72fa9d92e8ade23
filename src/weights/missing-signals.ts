import { steeringSignals, type SteeringSignal } from '../balancing/engine/steering.js';
import type { Explanation, WeightingPolicy } from '../balancing/engine/types.js';
import type { Component } from '../runtime/lifecycle.js';

/**
 * A policy that steers on a signal no endpoint sends does nothing visible: its weights stay
 * static. This says so — which signal is missing, for which endpoints, and how to provide it —
 * in /v1/weights, on the dashboard and in a rate-limited log line.
 */
export interface MissingSignals {
  /** Any one of these makes an endpoint's data fresh. */
  readonly signals: readonly SteeringSignal[];
  /** Endpoints (address:port) that have never sent one. */
  readonly endpoints: readonly string[];
  /** Of how many endpoints in rotation or not. */
  readonly of: number;
  readonly howToProvide: readonly string[];
  readonly effect: string;
}

const HOW_TO_PROVIDE: Readonly<Record<SteeringSignal, string>> = {
  cpu:
    'cpu: have the backends return ORCA load on their responses (`endpoint-load-metrics: TEXT cpu_utilization=0.42`) with `server.loadReporting` on, ' +
    'so Envoy carries it to fulcrum in its load reports; or POST /v1/reports (or gRPC ReportService) with `cpu` per endpoint',
  inflight: 'inflight: POST /v1/reports (or gRPC ReportService) with `inflight` (requests in progress) per endpoint',
  latencyMs:
    'latencyMs: ORCA `named_metrics.latency_ms` in the backends\' `endpoint-load-metrics` (carried by Envoy\'s load reports), ' +
    'or POST /v1/reports (or gRPC ReportService) with `latencyMs` per endpoint',
};

export const MISSING_SIGNAL_EFFECT = 'these endpoints are held at their static weights until a signal arrives';

/** The missing-signal notice of one cluster's last tick, or undefined when nothing is missing. */
export function missingSignals(policy: WeightingPolicy, explanations: ReadonlyMap<string, Explanation>): MissingSignals | undefined {
  const signals = steeringSignals(policy);
  if (signals.length === 0) return undefined;
  const endpoints: string[] = [];
  for (const [key, e] of explanations) if (e.freshness === 'none' && e.healthState !== 'OPERATOR_DISABLED') endpoints.push(key);
  if (endpoints.length === 0) return undefined;
  return { signals, endpoints, of: explanations.size, howToProvide: signals.map((s) => HOW_TO_PROVIDE[s]), effect: MISSING_SIGNAL_EFFECT };
}

export interface MissingSignalsLogOptions {
  /** Every adaptive cluster's notice (AdaptiveWeights.missingSignals). */
  readonly notices: () => ReadonlyMap<string, MissingSignals>;
  readonly log: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void };
  /** How often to look (default 10 s). */
  readonly checkMs?: number;
  /** The same cluster's notice is repeated at most this often while it lasts (default 10 min). */
  readonly repeatMs?: number;
  readonly now?: () => number;
}

/**
 * Logs a cluster's missing signals when they appear or change, then at most every `repeatMs`
 * while they last, and once when they are resolved: one line per cluster, not one per tick.
 */
export class MissingSignalsLog implements Component {
  readonly name = 'missing-signals-log';
  private timer: NodeJS.Timeout | undefined;
  private readonly logged = new Map<string, { at: number; signature: string }>();

  constructor(private readonly options: MissingSignalsLogOptions) {}

  start(): void {
    this.timer = setInterval(() => this.check(), this.options.checkMs ?? 10_000);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  check(): void {
    const now = (this.options.now ?? Date.now)();
    const notices = this.options.notices();
    for (const [cluster, n] of notices) this.report(cluster, n, now);
    for (const cluster of [...this.logged.keys()]) {
      if (notices.has(cluster)) continue;
      this.logged.delete(cluster);
      this.options.log.info({ cluster }, 'signals now arrive for every endpoint of the cluster: its weights adapt');
    }
  }

  private report(cluster: string, n: MissingSignals, now: number): void {
    const signature = `${n.signals.join(',')}|${n.endpoints.length}`;
    const last = this.logged.get(cluster);
    if (last && last.signature === signature && now - last.at < (this.options.repeatMs ?? 600_000)) return;
    this.logged.set(cluster, { at: now, signature });
    const sample = n.endpoints.slice(0, 5);
    this.options.log.warn(
      { cluster, signals: n.signals, endpoints: sample, missing: n.endpoints.length, of: n.of, howToProvide: n.howToProvide },
      `cluster ${cluster}: no ${n.signals.join(' or ')} signal from ${n.endpoints.length} of ${n.of} endpoints: ${n.effect}`,
    );
  }
}
