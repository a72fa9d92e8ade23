import { Gauge, type Registry } from 'prom-client';

/**
 * Per-endpoint gauges, capped. One series per endpoint is what an operator wants for a few
 * hundred endpoints and what breaks scraping for 100k (7 MB and 3.6 s per scrape, most of it
 * prom-client hashing label sets). Each gauge therefore emits at most `max` series: whole
 * clusters, in the source's order (the catalog's: by name), until the next cluster no longer fits;
 * the endpoints left out are counted in `fulcrum_endpoint_series_omitted{metric}`, so a
 * dashboard can tell "capped" from "absent". `max: 0` turns per-endpoint series off.
 */

/** One endpoint's value for a per-endpoint gauge; `endpoint` is its `address:port` key. */
export interface EndpointValue {
  readonly cluster: string;
  readonly endpoint: string;
  readonly value: number;
}

/** Per gauge, by default: 2 gauges × 1,000 series keep /metrics around 150 KB. */
export const DEFAULT_MAX_ENDPOINT_SERIES = 1000;

/**
 * The values to emit from `source` under `max`: whole clusters while they fit (the source yields
 * each cluster's endpoints together), and how many endpoints were left out.
 */
export function capEndpointValues(source: Iterable<EndpointValue>, max: number): { kept: EndpointValue[]; omitted: number } {
  const kept: EndpointValue[] = [];
  let group: EndpointValue[] = [];
  let omitted = 0;
  let full = max <= 0;
  const close = () => {
    if (!full && kept.length + group.length <= max) kept.push(...group);
    else {
      full = true;
      omitted += group.length;
    }
    group = [];
  };
  for (const v of source) {
    if (full) {
      omitted++;
      continue;
    }
    if (group.length > 0 && group[0]?.cluster !== v.cluster) close();
    if (full) omitted++;
    else group.push(v);
  }
  close();
  return { kept, omitted };
}

export interface EndpointGaugeSpec {
  readonly name: string;
  readonly help: string;
  readonly source: () => Iterable<EndpointValue>;
}

/** The capped per-endpoint gauges and their omitted-series gauge, rebuilt at every scrape. */
export function endpointGauges(registers: Registry[], max: number, specs: readonly EndpointGaugeSpec[]): void {
  const omitted = new Map<string, number>(specs.map((s) => [s.name, 0]));
  for (const spec of specs) {
    new Gauge({
      name: spec.name,
      help: `${spec.help} At most ${max} series (server.admin.metrics.maxEndpointSeries; whole clusters).`,
      labelNames: ['cluster', 'endpoint'],
      registers,
      collect() {
        this.reset();
        const { kept, omitted: n } = capEndpointValues(spec.source(), max);
        omitted.set(spec.name, n);
        for (const { cluster, endpoint, value } of kept) this.set({ cluster, endpoint }, value);
      },
    });
  }
  new Gauge({
    name: 'fulcrum_endpoint_series_omitted',
    help: 'Endpoints left out of a per-endpoint gauge (metric) at the last scrape because of server.admin.metrics.maxEndpointSeries.',
    labelNames: ['metric'],
    registers,
    collect() {
      // Registered after the gauges it counts, so prom-client collects them first in one scrape.
      for (const [metric, n] of omitted) this.set({ metric }, n);
    },
  });
}
