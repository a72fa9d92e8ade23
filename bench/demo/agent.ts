/**
 * The demo's metrics agent: Envoy's load reports (LRS) carry request counts and the backends'
 * ORCA cpu_utilization but no latency, and the EWMA policy needs latency. This agent batches,
 * per backend, the mean latency of the responses completed in the last interval (as the load
 * generator saw them through Envoy, matched to the backend by its `x-backend` header) and,
 * optionally, the backend's utilization as `cpu`, and sends them to fulcrum's gRPC
 * `fulcrum.reports.v1.ReportService/Report` on the xDS port, as an out-of-process agent would.
 */
import * as grpc from '@grpc/grpc-js';
import { decodeReportResponse, encodeReportRequest, REPORT_METHOD_PATH, type WireReportRequest } from '../../src/signals/report-grpc.js';

export interface AgentOptions {
  /** fulcrum's xDS (and reports) gRPC address, host:port. */
  readonly target: string;
  readonly cluster: string;
  /** Endpoint key (`127.0.0.1:port`) of each backend, by index. */
  readonly endpoints: readonly string[];
  readonly intervalMs: number;
  /** Also report each backend's utilization as `cpu` (returns undefined to skip). */
  readonly cpu?: (backend: number) => number | undefined;
}

export interface Agent {
  /** Feed one completed response. */
  observe(backend: number, latencyMs: number): void;
  /** Batches sent, samples accepted and rejected so far. */
  stats(): { batches: number; accepted: number; rejected: number; failures: number; lastError?: string };
  stop(): void;
}

export function startAgent(o: AgentOptions): Agent {
  const client = new grpc.Client(o.target, grpc.credentials.createInsecure());
  const sums = o.endpoints.map(() => ({ n: 0, total: 0 }));
  const stats = { batches: 0, accepted: 0, rejected: 0, failures: 0, lastError: undefined as string | undefined };
  const flush = (): void => {
    const now = Date.now();
    const time = { seconds: Math.floor(now / 1000), nanos: (now % 1000) * 1e6 };
    const samples: NonNullable<WireReportRequest['samples']> = [];
    o.endpoints.forEach((endpoint, i) => {
      const s = sums[i] as { n: number; total: number };
      const cpu = o.cpu?.(i);
      // No response from a backend in the interval: no latency to report (its estimate ages instead).
      if (s.n === 0 && cpu === undefined) return;
      samples.push({
        cluster: o.cluster,
        endpoint,
        time,
        ...(s.n > 0 ? { latency_ms: s.total / s.n } : {}),
        ...(cpu !== undefined ? { cpu: Math.min(1, cpu) } : {}),
      });
      s.n = 0;
      s.total = 0;
    });
    if (samples.length === 0) return;
    client.makeUnaryRequest(
      REPORT_METHOD_PATH,
      (b: Buffer) => b,
      decodeReportResponse,
      encodeReportRequest({ reporter: 'demo-agent', samples }),
      (err, res) => {
        stats.batches++;
        if (err || !res) {
          stats.failures++;
          stats.lastError = err?.message ?? 'no response';
          return;
        }
        stats.accepted += res.accepted;
        stats.rejected += res.rejected.length;
        if (res.rejected.length > 0) stats.lastError = JSON.stringify(res.rejected[0]);
      },
    );
  };
  const timer = setInterval(flush, o.intervalMs);
  return {
    observe(backend, latencyMs) {
      const s = sums[backend];
      if (!s) return;
      s.n++;
      s.total += latencyMs;
    },
    stats: () => ({ ...stats, ...(stats.lastError !== undefined ? { lastError: stats.lastError } : {}) }),
    stop() {
      clearInterval(timer);
      client.close();
    },
  };
}
