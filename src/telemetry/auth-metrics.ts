import { Counter, type Registry } from 'prom-client';
import { WindowedLog } from './windowed-log.js';

/**
 * Metrics of the xDS port's security (src/xds/authz.ts, transport-security.ts), on fulcrum's
 * registry. A file of its own so the Metrics class stays about serving and signals.
 */
export class XdsAuthMetrics {
  private readonly refusals: Counter<'surface' | 'reason'>;
  private readonly reloads: Counter<'result'>;
  private readonly handshakes: Counter<'handshake'>;

  constructor(registry: Registry) {
    this.refusals = new Counter({
      name: 'fulcrum_grpc_auth_refused_total',
      help: 'gRPC calls on the xDS port refused by authentication or authorization, by surface (xds, report, status) and reason',
      labelNames: ['surface', 'reason'],
      registers: [registry],
    });
    this.reloads = new Counter({
      name: 'fulcrum_xds_tls_reloads_total',
      help: 'Changes of the xDS TLS certificate files seen: reloaded (applied) or failed (unusable; the previous ones stay)',
      labelNames: ['result'],
      registers: [registry],
    });
    for (const result of ['reloaded', 'failed']) this.reloads.inc({ result }, 0);
    this.handshakes = new Counter({
      name: 'fulcrum_xds_tls_connections_total',
      help:
        'TLS connections on the xDS port, counted at their first stream, by handshake: full (certificates exchanged), resumed ' +
        '(a session ticket; across restarts and replicas with server.xds.tls.sessionTicketKeyFile), or resumed_refused (closed: ' +
        'the client certificate the session was made with is no longer valid, or it has none where one is required)',
      labelNames: ['handshake'],
      registers: [registry],
    });
    // src/xds/tls-sessions.ts TlsHandshake's values, each shown from the start.
    for (const handshake of ['full', 'resumed', 'resumed_refused']) this.handshakes.inc({ handshake }, 0);
  }

  tlsHandshake(handshake: string): void {
    this.handshakes.inc({ handshake });
  }

  refused(surface: string, reason: string): void {
    this.refusals.inc({ surface, reason });
  }

  tlsReloaded(result: 'reloaded' | 'failed'): void {
    this.reloads.inc({ result });
  }
}

/**
 * Logs refused calls without letting a client that retries (or an attacker) turn every refusal
 * into a log line: the first refusal per surface and reason in each window is logged, with how
 * many like it were left out in the window before. The metric counts them all.
 */
export class RefusalLog {
  private readonly windows: WindowedLog;

  constructor(log: (fields: Record<string, unknown>, message: string) => void, windowMs = 10_000, now: () => number = Date.now) {
    this.windows = new WindowedLog(log, 'gRPC call refused', windowMs, now);
  }

  refused(surface: string, reason: string, detail: Record<string, unknown>): void {
    this.windows.event(`${surface}/${reason}`, { surface, reason, ...detail });
  }
}
