import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * HTTP backends that report their load to Envoy the ORCA way: every response carries an
 * `endpoint-load-metrics` header, in the TEXT form (`TEXT cpu_utilization=0.42, mem_utilization=0.3`)
 * or the JSON form (`JSON {"cpu_utilization":0.42}`). Each answers with a configurable status.
 */

export interface OrcaBehavior {
  /** Header format (default TEXT). 'none' sends no ORCA header. */
  format?: 'TEXT' | 'JSON' | 'none';
  cpu?: number;
  mem?: number;
  /** named_metrics entries. */
  named?: Record<string, number>;
  /** Other top-level OrcaLoadReport fields (eps, rps_fractional, ...), TEXT form only. */
  other?: Record<string, number>;
  /** Response status (default 200). */
  status?: number;
}

export interface OrcaBackend {
  readonly index: number;
  readonly port: number;
  /** `127.0.0.1:<port>`, the catalog's endpoint key. */
  readonly key: string;
  readonly count: number;
}

export interface OrcaBackends {
  readonly list: OrcaBackend[];
  close(): Promise<void>;
}

export function orcaHeader(b: OrcaBehavior): string | undefined {
  const fields: Record<string, number> = {};
  if (b.cpu !== undefined) fields.cpu_utilization = b.cpu;
  if (b.mem !== undefined) fields.mem_utilization = b.mem;
  for (const [k, v] of Object.entries(b.named ?? {})) fields[`named_metrics.${k}`] = v;
  for (const [k, v] of Object.entries(b.other ?? {})) fields[k] = v;
  switch (b.format ?? 'TEXT') {
    case 'none':
      return undefined;
    case 'TEXT':
      return `TEXT ${Object.entries(fields).map(([k, v]) => `${k}=${v}`).join(', ')}`;
    case 'JSON': {
      // ORCA's OrcaLoadReport JSON: named metrics go in a named_metrics map.
      const { cpu_utilization, mem_utilization } = fields;
      return `JSON ${JSON.stringify({
        ...(cpu_utilization !== undefined ? { cpu_utilization } : {}),
        ...(mem_utilization !== undefined ? { mem_utilization } : {}),
        ...(b.named ? { named_metrics: b.named } : {}),
      })}`;
    }
  }
}

export async function startOrcaBackends(behaviors: OrcaBehavior[]): Promise<OrcaBackends> {
  const servers: http.Server[] = [];
  const counts = behaviors.map(() => 0);
  const list: OrcaBackend[] = [];
  for (const [index, behavior] of behaviors.entries()) {
    const server = http.createServer((req, res) => {
      counts[index] = (counts[index] ?? 0) + 1;
      req.resume();
      const header = orcaHeader(behavior);
      if (header !== undefined) res.setHeader('endpoint-load-metrics', header);
      res.setHeader('x-backend', String(index));
      res.statusCode = behavior.status ?? 200;
      res.end(`backend ${index}\n`);
    });
    servers.push(server);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const port = (server.address() as AddressInfo).port;
    list.push({
      index,
      port,
      key: `127.0.0.1:${port}`,
      get count() {
        return counts[index] ?? 0;
      },
    });
  }
  return {
    list,
    close: async () => {
      await Promise.all(
        servers.map(
          (s) =>
            new Promise<void>((resolve) => {
              s.close(() => resolve());
              s.closeAllConnections();
            }),
        ),
      );
    },
  };
}
