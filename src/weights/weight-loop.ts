import type { MaybePromise } from '../catalog/store/catalog-store.js';
import type { WeightOverrides } from '../catalog/weight-overrides.js';
import type { Component } from '../runtime/lifecycle.js';
import type { SignalListener } from '../signals/signal-store.js';
import type { AdaptiveWeights } from './adaptive-weights.js';

/** Where published weights outlive the process (the durable store). */
export interface WeightArchive {
  loadWeights(): ReadonlyMap<string, ReadonlyMap<string, number>>;
  saveAllWeights(weights: ReadonlyMap<string, ReadonlyMap<string, number>>): MaybePromise<void>;
}

export interface WeightLoopOptions {
  readonly adaptive: Pick<AdaptiveWeights, 'observeSample' | 'observeProbe' | 'seed' | 'tick' | 'adaptiveWeights'>;
  /** The fleet's samples and probe results, fed to the engine between ticks. */
  readonly signals: { subscribe(listener: SignalListener): () => void };
  readonly archive: WeightArchive;
  readonly tickMs: number;
  /** Receives the overrides whenever a tick changes what is published (the xDS publisher). */
  readonly publish: (overrides: WeightOverrides) => void;
  /** How long each periodic tick took (metrics). */
  readonly onTicked?: (ms: number) => void;
  /**
   * Saving the published weights failed (e.g. etcd unreachable). They are published anyway: the
   * archive only serves a restart or a hand-over. Default: a process warning.
   */
  readonly onArchiveError?: (err: unknown) => void;
  readonly now?: () => number;
}

/**
 * Runs the weight engine: signals in, a tick every `tickMs`, changed weights out to the publisher
 * and into the archive. Starting resumes from the weights the previous process published, so a
 * restart does not slosh traffic back to static weights.
 */
export class WeightLoop implements Component {
  readonly name = 'weights';
  private timer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  /** Per cluster, the published weights last handed to the archive (the engine's own map). */
  private readonly archived = new Map<string, ReadonlyMap<string, number>>();

  constructor(private readonly options: WeightLoopOptions) {}

  start(): void {
    const { adaptive } = this.options;
    this.unsubscribe = this.options.signals.subscribe((e) => {
      if (e.kind === 'sample') adaptive.observeSample(e.cluster, e.key, e.sample);
      else adaptive.observeProbe(e.cluster, e.key, e.result);
    });
    this.resume();
    this.timer = setInterval(() => this.tick(), this.options.tickMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }

  /** One periodic tick: publishes and persists only when the published weights changed. */
  tick(): void {
    const { adaptive, archive, publish, onTicked } = this.options;
    const started = performance.now();
    const overrides = adaptive.tick(this.now());
    onTicked?.(performance.now() - started);
    if (!overrides) return;
    publish(overrides);
    this.archive(archive, this.changedSinceArchived(adaptive.adaptiveWeights()));
  }

  /**
   * Only the clusters whose published weights are not the very map archived last (the engine keeps
   * a cluster's map until it publishes anew): rewriting 100,000 weights every time one cluster of
   * 1,000 moved was the loop's largest cost. saveAllWeights leaves clusters it is not given as they are.
   */
  private changedSinceArchived(all: ReadonlyMap<string, ReadonlyMap<string, number>>): Map<string, ReadonlyMap<string, number>> {
    const changed = new Map<string, ReadonlyMap<string, number>>();
    for (const [cluster, weights] of all) if (this.archived.get(cluster) !== weights) changed.set(cluster, weights);
    for (const cluster of this.archived.keys()) if (!all.has(cluster)) this.archived.delete(cluster);
    return changed;
  }

  private archive(archive: WeightArchive, weights: ReadonlyMap<string, ReadonlyMap<string, number>>): void {
    if (weights.size === 0) return;
    const failed = this.options.onArchiveError ?? ((err: unknown) => process.emitWarning(`fulcrum could not archive weights: ${String(err)}`));
    // Remembered once saved, so a failed save is retried with the next change.
    const saved = (): void => weights.forEach((w, cluster) => this.archived.set(cluster, w));
    try {
      const saving = archive.saveAllWeights(weights);
      if (saving instanceof Promise) saving.then(saved, failed);
      else saved();
    } catch (err) {
      failed(err);
    }
  }

  private resume(): void {
    const { adaptive, archive, publish } = this.options;
    for (const [cluster, weights] of archive.loadWeights()) adaptive.seed(cluster, weights);
    const resumed = adaptive.tick(this.now());
    if (resumed) publish(resumed);
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
  }
}
