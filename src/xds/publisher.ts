import { nextTurn } from '../runtime/next-turn.js';
import type { Logger } from 'pino';
import { endpointKey } from '../catalog/endpoint-key.js';
import type { Catalog } from '../catalog/types.js';
import type { XdsCache } from './cache.js';
import { Debouncer } from '../runtime/debounce.js';
import type { WeightOverrides } from '../catalog/weight-overrides.js';
import type { Component } from '../runtime/lifecycle.js';
import { publishedEndpoint, type LoadReportingOptions } from './translate-clusters.js';
import { Translator, type TranslationForms } from './translator.js';
import type { ClusterEndpointValues as ClusterEndpointWeights, EndpointValue as EndpointWeight } from '../telemetry/endpoint-series.js';

/**
 * Desired state (catalog + adaptive weights) → translated, versioned snapshots, debounced.
 * Starting publishes the first snapshot at once; once stopped, changes are no longer published.
 * When a big cluster's assignment must be encoded again, or many clusters' (a weight publication
 * over a busy fleet), they are encoded first in slices that let the event loop turn
 * (Translator.prepare), and the snapshot is published once that is done, from the catalog and
 * weights as they are then; changes meanwhile are folded into that publication.
 */
export class Publisher implements Component {
  readonly name = 'publisher';
  private catalog: Catalog | undefined;
  private stopped = false;
  private weights: WeightOverrides | undefined;
  private readonly debouncer: Debouncer;
  private readonly translator = new Translator();
  /** Assignments are being encoded ahead (Translator.prepare); a publication follows. */
  private preparing = false;
  /** The forms published besides Envoy's: gRPC's once a gRPC client has connected (never turned off: they come back). */
  private forms: TranslationForms = { grpc: false };

  constructor(
    private readonly cache: XdsCache,
    private readonly log: Logger,
    debounce: { quietMs: number; maxMs: number },
    private readonly onPublished: (changedGroups: number, ms: number) => void = () => undefined,
    /** When set, clusters ask proxies to send load reports (LRS) with these ORCA metrics. */
    private readonly loadReporting?: LoadReportingOptions,
  ) {
    this.debouncer = new Debouncer(debounce.quietMs, debounce.maxMs, () => this.publish());
  }

  setCatalog(catalog: Catalog): void {
    this.catalog = catalog;
    if (!this.stopped) this.debouncer.trigger();
  }

  setWeights(weights: WeightOverrides): void {
    this.weights = weights;
    if (!this.stopped) this.debouncer.trigger();
  }

  /**
   * A proxyless gRPC client is connecting: from now on every publication carries gRPC's form too
   * (client-form.ts). Published at once, before the client's first answer, unless assignments
   * must be encoded ahead (a big catalog: publish()); the server holds gRPC clients' first answers
   * until then (grpc-form-gate.ts).
   */
  serveGrpcForm(): void {
    if (this.forms.grpc) return;
    this.forms = { grpc: true };
    if (this.stopped) return;
    this.debouncer.cancel();
    this.publish();
  }

  /** Per endpoint of the catalog being published, the weight its EDS entry carries (the translator's rule). */
  *endpointWeights(): Iterable<EndpointWeight> {
    for (const c of this.endpointWeightsByCluster()) yield* c.values();
  }

  /**
   * endpointWeights by cluster, with the cluster's endpoint count: /metrics keeps a few clusters'
   * series and only counts the others' endpoints, so it does not walk them (nor build their keys).
   */
  *endpointWeightsByCluster(): Iterable<ClusterEndpointWeights> {
    for (const c of this.catalog?.clusters ?? []) {
      const overrides = this.weights?.get(c.name);
      const values = function* (): Iterable<EndpointWeight> {
        for (const e of c.endpoints) {
          const endpoint = endpointKey(e);
          yield { cluster: c.name, endpoint, value: publishedEndpoint(e, overrides?.get(endpoint)).weight };
        }
      };
      yield { cluster: c.name, size: c.endpoints.length, values };
    }
  }

  start(): void {
    this.stopped = false;
    this.publishNow();
  }

  /** Publishes immediately (used at start so the first proxies do not wait for the debounce). */
  publishNow(): void {
    this.debouncer.cancel();
    this.translateNow();
  }

  stop(): void {
    this.stopped = true;
    this.debouncer.cancel();
  }

  private publish(): void {
    if (!this.catalog || this.preparing) return;
    const big = this.translator.bigPending(this.catalog, this.weights, this.forms);
    if (big.length === 0) return this.translateNow();
    this.preparing = true;
    this.translator
      .prepare(big, this.weights, nextTurn, this.forms)
      .catch((err: unknown) => this.log.error({ err }, 'encoding assignments ahead failed; encoding them in one go'))
      .finally(() => {
        this.preparing = false;
        if (!this.stopped) this.translateNow();
      });
  }

  private translateNow(): void {
    if (!this.catalog) return;
    const started = performance.now();
    try {
      const changed = this.cache.update(this.translator.translate(this.catalog, this.weights, this.loadReporting, this.forms));
      const ms = performance.now() - started;
      if (changed.size > 0) this.log.debug({ groups: [...changed], ms: Math.round(ms * 10) / 10 }, 'snapshot published');
      this.onPublished(changed.size, ms);
    } catch (err) {
      // A translation bug must not take down serving: proxies keep the last good snapshot.
      this.log.error({ err }, 'translation failed; keeping the previous snapshot');
    }
  }
}
