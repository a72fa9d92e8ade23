import { Counter, Gauge, type Registry } from 'prom-client';

/** What the edge of the xDS port reports at scrape time. */
export interface EdgeCounts {
  readonly connections: number;
  readonly calls: number;
  /** Response bytes written to streams but not yet flushed. */
  readonly queuedBytes: number;
  /** Streams holding responses back at server.xds.limits.maxQueuedBytesPerStream. */
  readonly congestedStreams: number;
  /** Streams whose first answer waits for Kubernetes discovery's first view (held-answers.ts). */
  readonly heldAnswers: number;
}

export interface XdsEdgeMetrics {
  /** A connection, call or request refused by the named `server.xds.limits` setting. */
  limitExceeded(limit: string): void;
  /** A connection closed because it did not speak gRPC (HTTP/1.1, garbage, plaintext on a TLS port). */
  refused(reason: string): void;
}

/**
 * The xDS port's bounds as metrics: refusals by limit (pre-created at 0 for every limit, so a
 * dashboard can alert on a rate), connections that were not gRPC, and what is open right now.
 */
export function xdsEdgeMetrics(registry: Registry, limits: readonly string[], counts: () => EdgeCounts): XdsEdgeMetrics {
  const registers = [registry];
  const exceeded = new Counter({
    name: 'fulcrum_xds_limit_exceeded_total',
    help: 'Connections, calls and requests on the xDS port refused by a server.xds.limits setting (or server.xds.maxResourceNames), by limit.',
    labelNames: ['limit'],
    registers,
  });
  const refused = new Counter({
    name: 'fulcrum_xds_connections_refused_total',
    help: 'Connections to the xDS port closed because their first bytes were not HTTP/2 (or TLS when TLS is on), by reason.',
    labelNames: ['reason'],
    registers,
  });
  const gauge = (name: string, help: string, read: (c: EdgeCounts) => number): void =>
    void new Gauge({
      name,
      help,
      registers,
      collect() {
        this.set(read(counts()));
      },
    });
  gauge('fulcrum_xds_open_connections', 'Connections open on the xDS port.', (c) => c.connections);
  gauge('fulcrum_xds_open_calls', 'gRPC calls open on the xDS port (every service: ADS, per-type xDS, CSDS, LRS, reports).', (c) => c.calls);
  gauge('fulcrum_xds_queued_bytes', 'Response bytes written to xDS streams and not yet flushed to their proxies (slow or stalled readers).', (c) => c.queuedBytes);
  gauge(
    'fulcrum_xds_congested_streams',
    'xDS streams holding responses back because server.xds.limits.maxQueuedBytesPerStream is reached; each is sent its latest state when it drains.',
    (c) => c.congestedStreams,
  );
  gauge(
    'fulcrum_xds_held_answers',
    "xDS streams whose first answer is held until Kubernetes discovery's first view is served (a whole CDS set without it would delete the discovered clusters).",
    (c) => c.heldAnswers,
  );
  for (const limit of limits) exceeded.inc({ limit }, 0);
  refused.inc({ reason: 'not-grpc' }, 0);
  return {
    limitExceeded: (limit) => exceeded.inc({ limit }),
    refused: (reason) => refused.inc({ reason }),
  };
}
