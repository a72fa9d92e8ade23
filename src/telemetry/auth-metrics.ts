import { Counter, type Registry } from 'prom-client';

/**
 * Metrics of the xDS port's security (src/xds/authz.ts, transport-security.ts), on fulcrum's
 * registry. A file of its own so the Metrics class stays about serving and signals.
 */
export class XdsAuthMetrics {
  private readonly refusals: Counter<'surface' | 'reason'>;
  private readonly reloads: Counter<'result'>;

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
  }

  refused(surface: string, reason: string): void {
    this.refusals.inc({ surface, reason });
  }

  tlsReloaded(result: 'reloaded' | 'failed'): void {
    this.reloads.inc({ result });
  }
}
