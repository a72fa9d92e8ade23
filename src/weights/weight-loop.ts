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
    this.archive(archive, adaptive.adaptiveWeights());
  }

  private archive(archive: WeightArchive, weights: ReadonlyMap<string, ReadonlyMap<string, number>>): void {
    const failed = this.options.onArchiveError ?? ((err: unknown) => process.emitWarning(`fulcrum could not archive weights: ${String(err)}`));
    try {
      const saving = archive.saveAllWeights(weights);
      if (saving instanceof Promise) saving.catch(failed);
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
