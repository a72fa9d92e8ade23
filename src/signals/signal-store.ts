/**
 * SignalStore: per cluster, per endpoint key (`address:port`), the latest load samples and active
 * probe results, in small bounded rings. Pure: no I/O, no timers; time comes from an injectable
 * clock (the same clock the weight engine ticks with) or from the caller.
 *
 * Samples are kept in order of their `at`, oldest first; a sample older than everything in a
 * full ring is not kept, and is passed on only if it carries a field none of the kept ones has.
 * Absent fields are unknown, not zero: an LRS sample carrying only request counts does not hide
 * the CPU an agent reported a moment earlier (see `merged`).
 */

import { monotonicNow } from '../runtime/monotonic-clock.js';

/** The load metrics a sample may carry. Units as in proto/fulcrum/reports/v1/reports.proto. */
export interface SampleFields {
  /** CPU utilization, 0..1. */
  readonly cpu?: number;
  /** Memory utilization, 0..1. */
  readonly memory?: number;
  /** Requests in flight at the sampling moment. */
  readonly inflight?: number;
  /** Mean request latency over the sampling interval, ms. */
  readonly latencyMs?: number;
  /** Requests per second over the sampling interval. */
  readonly rps?: number;
  /** Failed requests per second over the sampling interval. */
  readonly errors?: number;
}

export const SAMPLE_FIELDS = ['cpu', 'memory', 'inflight', 'latencyMs', 'rps', 'errors'] as const satisfies readonly (keyof SampleFields)[];
export type SampleField = (typeof SAMPLE_FIELDS)[number];

/** Where a sample came from, for explanations and debugging. */
export type SampleSource = 'report' | 'lrs';

/** One endpoint's load at one moment (`at`, ms on the store's clock). Structurally an engine `Sample`. */
export interface Sample extends SampleFields {
  readonly at: number;
  readonly source?: SampleSource;
  /**
   * Load reports only (the engine's stall rule, tick/stall.ts), and only together, from one
   * flush: requests that succeeded per second, and what the same proxies saw of the cluster's
   * other endpoints that succeeded some: their requests in progress and completions (successes
   * and errors) per second. Not a report field, nor merged with other samples: read with the
   * rps and inflight of this sample.
   */
  readonly successes?: number;
  readonly peerInflight?: number;
  readonly peerCompletions?: number;
}

/** One active probe's outcome. Structurally an engine `ProbeResult`. */
export interface ProbeResult {
  readonly ok: boolean;
  readonly at: number;
  readonly latencyMs?: number;
  /** Why the probe failed (timeout, refused, HTTP 503, NOT_SERVING...). */
  readonly error?: string;
}

export type SignalEvent =
  | { readonly kind: 'sample'; readonly cluster: string; readonly key: string; readonly sample: Sample }
  | { readonly kind: 'probe'; readonly cluster: string; readonly key: string; readonly result: ProbeResult };

export type SignalListener = (event: SignalEvent) => void;

export interface SignalStoreOptions {
  /** Time source (ms); default monotonicNow (runtime/monotonic-clock.ts). Must be the clock the consumers compare ages with. */
  readonly now?: () => number;
  /** Samples kept per endpoint (default 16). */
  readonly samplesPerEndpoint?: number;
  /** Probe results kept per endpoint (default 16). */
  readonly probesPerEndpoint?: number;
  /** Endpoints tracked across all clusters (default 100,000); beyond it new endpoints are refused. */
  readonly maxEndpoints?: number;
  /** Called when a listener throws (the other listeners still run). Default: ignore. */
  readonly onListenerError?: (err: unknown) => void;
}

/** A fixed-capacity buffer ordered by `at`, oldest first. */
class Ring<T extends { readonly at: number }> {
  private items: T[] = [];
  constructor(private readonly capacity: number) {}

  push(item: T): boolean {
    const items = this.items;
    // The common case is in order; otherwise insert at its place (rings are tiny).
    let i = items.length;
    while (i > 0 && (items[i - 1] as T).at > item.at) i--;
    if (i === 0 && items.length >= this.capacity) return false; // older than everything kept
    items.splice(i, 0, item);
    if (items.length > this.capacity) items.shift();
    return true;
  }

  has(test: (item: T) => boolean): boolean {
    return this.items.some(test);
  }

  last(): T | undefined {
    return this.items[this.items.length - 1];
  }

  all(): readonly T[] {
    return this.items.slice();
  }

  /** Newest first. */
  *newestFirst(): Iterable<T> {
    for (let i = this.items.length - 1; i >= 0; i--) yield this.items[i] as T;
  }

  get size(): number {
    return this.items.length;
  }
}

interface EndpointSignals {
  readonly samples: Ring<Sample>;
  readonly probes: Ring<ProbeResult>;
}

/**
 * Whether a sample older than everything in a full ring still brings a field none of the kept
 * samples carries: the listeners (the weight engine keeps the newest value of each field) get it,
 * though the ring does not keep it. The ring is shared by every source of an endpoint, so without
 * this one source sending samples fast (another agent, within its budget) kept a slower agent's
 * latency from ever reaching the engine: its samples were refused as older than the ring.
 */
function carriesNews(ring: Ring<Sample>, sample: Sample): boolean {
  return SAMPLE_FIELDS.some((f) => sample[f] !== undefined && !ring.has((s) => s[f] !== undefined));
}

function finiteOrUndefined(v: number | undefined): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

/** A load report's success counts go along only together and finite (the engine reads them as one). */
function keepFlow(into: { -readonly [K in keyof Sample]: Sample[K] }, sample: Sample): void {
  const { successes, peerInflight, peerCompletions } = sample;
  if (![successes, peerInflight, peerCompletions].every((v) => typeof v === 'number' && Number.isFinite(v) && v >= 0)) return;
  into.successes = successes;
  into.peerInflight = peerInflight;
  into.peerCompletions = peerCompletions;
}

export class SignalStore {
  private readonly clusters = new Map<string, Map<string, EndpointSignals>>();
  private readonly listeners = new Set<SignalListener>();
  private endpointCount = 0;
  private readonly clock: () => number;
  private readonly samplesPerEndpoint: number;
  private readonly probesPerEndpoint: number;
  private readonly maxEndpoints: number;
  private readonly onListenerError: (err: unknown) => void;

  constructor(options: SignalStoreOptions = {}) {
    this.clock = options.now ?? monotonicNow;
    this.samplesPerEndpoint = Math.max(1, options.samplesPerEndpoint ?? 16);
    this.probesPerEndpoint = Math.max(1, options.probesPerEndpoint ?? 16);
    this.maxEndpoints = Math.max(1, options.maxEndpoints ?? 100_000);
    this.onListenerError = options.onListenerError ?? (() => undefined);
  }

  /** The store's clock. Ingestion paths stamp samples with it. */
  now(): number {
    return this.clock();
  }

  /**
   * Records a sample. Non-finite fields are dropped (callers validate first; this is a last
   * guard so the engine never sees NaN). Returns false when the sample was neither kept nor
   * passed on: no field left, older than a full ring without a field the ring lacks, or the
   * endpoint limit is reached.
   */
  record(cluster: string, key: string, sample: Sample): boolean {
    const clean: { -readonly [K in keyof Sample]: Sample[K] } = { at: sample.at };
    let any = false;
    for (const f of SAMPLE_FIELDS) {
      const v = finiteOrUndefined(sample[f]);
      if (v !== undefined) {
        clean[f] = v;
        any = true;
      }
    }
    if (!any || !Number.isFinite(sample.at)) return false;
    if (sample.source !== undefined) clean.source = sample.source;
    keepFlow(clean, sample);
    const ep = this.endpoint(cluster, key, true);
    if (!ep || !(ep.samples.push(clean) || carriesNews(ep.samples, clean))) return false;
    this.emit({ kind: 'sample', cluster, key, sample: clean });
    return true;
  }

  recordProbe(cluster: string, key: string, result: ProbeResult): boolean {
    if (!Number.isFinite(result.at)) return false;
    const ep = this.endpoint(cluster, key, true);
    if (!ep || !ep.probes.push(result)) return false;
    this.emit({ kind: 'probe', cluster, key, result });
    return true;
  }

  /** The newest sample, whatever fields it carries. */
  latest(cluster: string, key: string): Sample | undefined {
    return this.endpoint(cluster, key, false)?.samples.last();
  }

  /** The newest sample that carries `field`. */
  latestWith(cluster: string, key: string, field: SampleField): Sample | undefined {
    const ep = this.endpoint(cluster, key, false);
    if (!ep) return undefined;
    for (const s of ep.samples.newestFirst()) if (s[field] !== undefined) return s;
    return undefined;
  }

  /**
   * Per field, the newest value among samples no older than `maxAgeMs` (default: any age). `at`
   * is the oldest timestamp among the values used, so freshness checks stay conservative.
   */
  merged(cluster: string, key: string, maxAgeMs = Infinity, now = this.clock()): Sample | undefined {
    const ep = this.endpoint(cluster, key, false);
    if (!ep) return undefined;
    const out: { -readonly [K in keyof Sample]: Sample[K] } = { at: Infinity };
    let any = false;
    for (const s of ep.samples.newestFirst()) {
      if (now - s.at > maxAgeMs) break;
      for (const f of SAMPLE_FIELDS) {
        const v = s[f];
        if (v !== undefined && out[f] === undefined) {
          out[f] = v;
          out.at = Math.min(out.at, s.at);
          any = true;
        }
      }
    }
    return any ? out : undefined;
  }

  /** Samples kept for the endpoint, oldest first. */
  samples(cluster: string, key: string): readonly Sample[] {
    return this.endpoint(cluster, key, false)?.samples.all() ?? [];
  }

  latestProbe(cluster: string, key: string): ProbeResult | undefined {
    return this.endpoint(cluster, key, false)?.probes.last();
  }

  /** Probe results kept for the endpoint, oldest first. */
  probes(cluster: string, key: string): readonly ProbeResult[] {
    return this.endpoint(cluster, key, false)?.probes.all() ?? [];
  }

  /** Per endpoint of the cluster, the merged sample (see `merged`). */
  mergedByEndpoint(cluster: string, maxAgeMs = Infinity, now = this.clock()): Map<string, Sample> {
    const out = new Map<string, Sample>();
    for (const key of this.clusters.get(cluster)?.keys() ?? []) {
      const s = this.merged(cluster, key, maxAgeMs, now);
      if (s) out.set(key, s);
    }
    return out;
  }

  clusterNames(): string[] {
    return [...this.clusters.keys()];
  }

  endpointKeys(cluster: string): string[] {
    return [...(this.clusters.get(cluster)?.keys() ?? [])];
  }

  /** Forgets a whole cluster, or one endpoint of it. */
  forget(cluster: string, key?: string): void {
    const eps = this.clusters.get(cluster);
    if (!eps) return;
    if (key === undefined) {
      this.endpointCount -= eps.size;
      this.clusters.delete(cluster);
      return;
    }
    if (eps.delete(key)) this.endpointCount--;
    if (eps.size === 0) this.clusters.delete(cluster);
  }

  /**
   * Keeps only the given clusters and, per cluster, the given endpoint keys: call it when the
   * catalog changes so removed endpoints do not hold memory.
   */
  retain(catalog: ReadonlyMap<string, Iterable<string>>): void {
    for (const cluster of [...this.clusters.keys()]) {
      const keep = catalog.get(cluster);
      if (keep === undefined) {
        this.forget(cluster);
        continue;
      }
      const wanted = new Set(keep);
      for (const key of this.endpointKeys(cluster)) if (!wanted.has(key)) this.forget(cluster, key);
    }
  }

  /** Subscribes to new samples and probe results; returns the unsubscribe function. */
  subscribe(listener: SignalListener): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  stats(): { clusters: number; endpoints: number } {
    return { clusters: this.clusters.size, endpoints: this.endpointCount };
  }

  private endpoint(cluster: string, key: string, create: boolean): EndpointSignals | undefined {
    let eps = this.clusters.get(cluster);
    const found = eps?.get(key);
    if (found || !create) return found;
    if (this.endpointCount >= this.maxEndpoints) return undefined;
    if (!eps) {
      eps = new Map();
      this.clusters.set(cluster, eps);
    }
    const ep: EndpointSignals = { samples: new Ring(this.samplesPerEndpoint), probes: new Ring(this.probesPerEndpoint) };
    eps.set(key, ep);
    this.endpointCount++;
    return ep;
  }

  private emit(event: SignalEvent): void {
    for (const l of this.listeners) {
      try {
        l(event);
      } catch (err) {
        // A listener's bug must not lose the sample for everyone else.
        this.onListenerError(err);
      }
    }
  }
}
