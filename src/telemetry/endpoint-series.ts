import { Gauge, type Registry } from 'prom-client';

/**
 * Per-endpoint gauges, capped. One series per endpoint is what an operator wants for a few
 * hundred endpoints and what breaks scraping for 100k (7 MB and 3.6 s per scrape, most of it
 * prom-client hashing label sets). Each gauge therefore emits at most `max` series: whole
 * clusters, in the source's order (the catalog's: by name), until the next cluster no longer fits;
 * the endpoints left out are counted in `fulcrum_endpoint_series_omitted{metric}`, so a
 * dashboard can tell "capped" from "absent". `max: 0` turns per-endpoint series off.
 *
 * Sources hand their endpoints over by cluster with the cluster's size, so the clusters left out
 * are counted without walking their endpoints (at 100k endpoints, walking them all for 1,000 kept
 * series was most of a scrape's one loop stall: keys built, then garbage collected); and the walk
 * that remains runs in steps, so a scrape can give the event loop turns (`prepare`).
 */

/** One endpoint's value for a per-endpoint gauge; `endpoint` is its `address:port` key. */
export interface EndpointValue {
  readonly cluster: string;
  readonly endpoint: string;
  readonly value: number;
}

/** One cluster's endpoint values: `size` is how many `values()` yields, known without walking them. */
export interface ClusterEndpointValues {
  readonly cluster: string;
  readonly size: number;
  values(): Iterable<EndpointValue>;
}

/** Per gauge, by default: 2 gauges × 1,000 series keep /metrics around 150 KB. */
export const DEFAULT_MAX_ENDPOINT_SERIES = 1000;

/** Endpoints walked (counted or kept) between two steps of `capSteps`: ~1 ms of work. */
export const CAP_STEP_ENDPOINTS = 5000;

export interface CappedValues {
  readonly kept: EndpointValue[];
  readonly omitted: number;
}

/** A flat source as clusters: each run of values of one cluster is a cluster (what the cap keeps or drops whole). */
export function* clustersOf(source: Iterable<EndpointValue>): Iterable<ClusterEndpointValues> {
  let run: EndpointValue[] = [];
  for (const v of source) {
    if (run.length > 0 && run[0]?.cluster !== v.cluster) {
      yield clusterRun(run);
      run = [];
    }
    run.push(v);
  }
  if (run.length > 0) yield clusterRun(run);
}

function clusterRun(run: EndpointValue[]): ClusterEndpointValues {
  return { cluster: run[0]?.cluster ?? '', size: run.length, values: () => run };
}

/**
 * The values to emit from `clusters` under `max` (whole clusters while they fit, then none) and
 * how many endpoints were left out, yielding after every `stepEndpoints` endpoints walked.
 */
export function* capSteps(clusters: Iterable<ClusterEndpointValues>, max: number, stepEndpoints = CAP_STEP_ENDPOINTS): Generator<void, CappedValues, void> {
  const kept: EndpointValue[] = [];
  let omitted = 0;
  let full = max <= 0;
  let walked = 0;
  for (const c of clusters) {
    if (!full && kept.length + c.size <= max) {
      for (const v of c.values()) kept.push(v);
      walked += c.size;
    } else {
      full = true;
      omitted += c.size;
      // A left-out cluster costs its source little (its size is known), but a source that had to
      // build it (a flat one, the signal store's) did walk it: count it as walked either way.
      walked += c.size;
    }
    if (walked >= stepEndpoints) {
      walked = 0;
      yield;
    }
  }
  return { kept, omitted };
}

/** `capSteps` at once, from a flat source (each cluster's values together). */
export function capEndpointValues(source: Iterable<EndpointValue>, max: number): CappedValues {
  return runAtOnce(capSteps(clustersOf(source), max));
}

export interface EndpointGaugeSpec {
  readonly name: string;
  readonly help: string;
  readonly source: () => Iterable<ClusterEndpointValues>;
}

/**
 * The capped per-endpoint gauges and their omitted-series gauge, rebuilt at every scrape: from
 * values `prepare` capped in steps ahead of the scrape when it ran, else capped at once in the
 * gauge's collect (a scrape through prom-client's own `registry.metrics()`).
 */
export class EndpointGauges {
  private readonly omitted: Map<string, number>;
  /** Per gauge, the values `prepare` capped for the next collect (taken by it). */
  private readonly prepared = new Map<string, CappedValues>();

  constructor(
    registers: Registry[],
    private readonly max: number,
    private readonly specs: readonly EndpointGaugeSpec[],
  ) {
    this.omitted = new Map(specs.map((s) => [s.name, 0]));
    for (const spec of specs) this.register(registers, spec);
    const omitted = this.omitted;
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

  /** Caps every gauge's values now, a turn of `turn` every few thousand endpoints walked; the next collect emits them. */
  async prepare(turn: () => Promise<void>): Promise<void> {
    for (const spec of this.specs) {
      const steps = capSteps(spec.source(), this.max);
      for (let step = steps.next(); ; step = steps.next()) {
        if (step.done === true) {
          this.prepared.set(spec.name, step.value);
          break;
        }
        await turn();
      }
    }
  }

  private register(registers: Registry[], spec: EndpointGaugeSpec): void {
    const take = (): CappedValues => this.take(spec);
    new Gauge({
      name: spec.name,
      help: `${spec.help} At most ${this.max} series (server.admin.metrics.maxEndpointSeries; whole clusters).`,
      labelNames: ['cluster', 'endpoint'],
      registers,
      collect() {
        this.reset();
        for (const { cluster, endpoint, value } of take().kept) this.set({ cluster, endpoint }, value);
      },
    });
  }

  private take(spec: EndpointGaugeSpec): CappedValues {
    const capped = this.prepared.get(spec.name) ?? runAtOnce(capSteps(spec.source(), this.max));
    this.prepared.delete(spec.name);
    this.omitted.set(spec.name, capped.omitted);
    return capped;
  }
}

/** Runs a stepped pass to its end (telemetry imports no other room, so not balancing/steps.ts's `runToEnd`). */
function runAtOnce<T>(steps: Generator<void, T, void>): T {
  for (;;) {
    const step = steps.next();
    if (step.done === true) return step.value;
  }
}
