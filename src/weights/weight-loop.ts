import type { MaybePromise } from '../catalog/store/catalog-store.js';
import type { WeightOverrides } from '../catalog/weight-overrides.js';
import type { Component } from '../runtime/lifecycle.js';
import type { SignalListener } from '../signals/signal-store.js';
import type { AdaptiveWeights } from './adaptive-weights.js';
import { monotonicNow } from '../runtime/monotonic-clock.js';

const DEFAULT_SLICE_ENDPOINTS = 5_000;
/**
 * An alarm's tick waits this long (ms) for the reports that came with it: proxies that report
 * together (one Envoy's report is folded per locality, several Envoys started together) go into
 * one tick, not one each.
 */
const ALARM_GATHER_MS = 20;

/** Where published weights outlive the process (the durable store). */
export interface WeightArchive {
  loadWeights(): ReadonlyMap<string, ReadonlyMap<string, number>>;
  saveAllWeights(weights: ReadonlyMap<string, ReadonlyMap<string, number>>): MaybePromise<void>;
}

export interface WeightLoopOptions {
  readonly adaptive: Pick<AdaptiveWeights, 'observeSample' | 'observeProbe' | 'seed' | 'tick' | 'tickInSlices' | 'adaptiveWeights' | 'alarmed' | 'tickAlarmed'>;
  /** The fleet's samples and probe results, fed to the engine between ticks. */
  readonly signals: { subscribe(listener: SignalListener): () => void };
  readonly archive: WeightArchive;
  readonly tickMs: number;
  /**
   * Endpoints ticked per slice before the loop yields to other work (default 5,000: a few ms).
   * A periodic tick runs in slices so that at 100,000 endpoints no admin request or xDS push waits
   * for the whole tick; a cluster larger than this ticks in steps of its own (WeightEngine.startClusterTick).
   */
  readonly sliceEndpoints?: number;
  /** Receives the overrides whenever a tick changes what is published (the xDS publisher). */
  readonly publish: (overrides: WeightOverrides) => void;
  /** The CPU time each periodic tick took, its slices summed (metrics). */
  readonly onTicked?: (ms: number) => void;
  /** An alarm's tick ran (see alarm; metrics). */
  readonly onAlarmTicked?: () => void;
  /**
   * Saving the published weights failed (e.g. etcd unreachable). They are published anyway: the
   * archive only serves a restart or a hand-over. Default: a process warning.
   */
  readonly onArchiveError?: (err: unknown) => void;
  /**
   * A tick threw (a bug, or input the engine did not expect). The published weights stay as they
   * were (fail static) and the next period ticks again; the process does not go down with it.
   * Default: a process warning.
   */
  readonly onTickError?: (err: unknown) => void;
  readonly now?: () => number;
}

/**
 * Runs the weight engine: signals in, a tick every `tickMs`, changed weights out to the publisher
 * and into the archive. Starting resumes from the weights the previous process published, so a
 * restart does not slosh traffic back to static weights.
 *
 * A signal that raises an alarm (an endpoint newly stalled, newly failing all it is sent or as much
 * as an outlier rule ejects at, taken out by its probes, or a backlog drain pending:
 * WeightEngine.takeAlarms) has its cluster ticked within
 * ALARM_GATHER_MS instead of at the next period: a hung backend collects its share, each request a
 * failure at the route timeout, until the tick that takes it out (up to a whole period later, half
 * of one on average).
 */
export class WeightLoop implements Component {
  readonly name = 'weights';
  private timer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  /** Per cluster, the published weights last handed to the archive (the engine's own map). */
  private readonly archived = new Map<string, ReadonlyMap<string, number>>();
  /** The periodic tick in flight (between two of its slices), if any. */
  private running: Generator<void, WeightOverrides | undefined, void> | undefined;
  /** The alarm's tick, once scheduled. */
  private alarmTimer: NodeJS.Timeout | undefined;
  /**
   * Endpoints alarm ticks may still tick until the next periodic tick: one slice's worth a period.
   * Load reports that flip in and out of an alarm (a hostile reporter) cost at most that much more.
   */
  private alarmBudget = 0;

  constructor(private readonly options: WeightLoopOptions) {}

  start(): void {
    const { adaptive } = this.options;
    this.unsubscribe = this.options.signals.subscribe((e) => {
      if (e.kind === 'sample') adaptive.observeSample(e.cluster, e.key, e.sample);
      else adaptive.observeProbe(e.cluster, e.key, e.result);
      if (adaptive.alarmed) this.scheduleAlarm();
    });
    this.resume();
    this.alarmBudget = this.sliceEndpoints();
    this.timer = setInterval(() => this.tick(), this.options.tickMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    clearTimeout(this.alarmTimer);
    this.alarmTimer = undefined;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    // A tick in flight is abandoned: nothing it computed is published (return() lets a cluster
    // ticking in steps complete first, so the engine's state is that of a whole tick).
    this.running?.return(undefined);
    this.running = undefined;
  }

  /**
   * One periodic tick, in slices with the event loop free between them (setImmediate); publishes
   * and persists once, at the end, only when the published weights changed. A tick still running
   * when the next is due is not doubled: that period is skipped.
   */
  tick(): void {
    if (this.running !== undefined) return;
    this.alarmBudget = this.sliceEndpoints();
    const run = this.options.adaptive.tickInSlices(this.now(), this.sliceEndpoints());
    this.running = run;
    let busyMs = 0;
    const step = (): void => {
      if (this.running !== run) return;
      const started = performance.now();
      let next: IteratorResult<void, WeightOverrides | undefined>;
      try {
        next = run.next();
      } catch (err) {
        this.running = undefined;
        this.tickFailed(err);
        return;
      }
      busyMs += performance.now() - started;
      if (next.done !== true) {
        setImmediate(step);
        return;
      }
      this.running = undefined;
      this.options.onTicked?.(busyMs);
      if (next.value) this.published(next.value);
      // An alarm raised while the periodic tick ran waited for it (see alarm).
      if (this.options.adaptive.alarmed) this.scheduleAlarm();
    };
    step();
  }

  private scheduleAlarm(): void {
    if (this.alarmTimer !== undefined || this.timer === undefined) return;
    this.alarmTimer = setTimeout(() => this.alarm(), ALARM_GATHER_MS);
    this.alarmTimer.unref();
  }

  /**
   * Ticks the alarmed clusters now. Never beside a periodic tick in flight: that tick publishes
   * what it computed for every cluster at its end, a cluster ticked before the alarm included, so
   * the alarm waits for it (and is taken up when it ends).
   */
  private alarm(): void {
    this.alarmTimer = undefined;
    if (this.running !== undefined) return;
    let ticked: ReturnType<WeightLoopOptions['adaptive']['tickAlarmed']>;
    try {
      ticked = this.options.adaptive.tickAlarmed(this.now(), this.alarmBudget);
    } catch (err) {
      this.tickFailed(err);
      return;
    }
    this.alarmBudget -= ticked.endpoints;
    if (ticked.clusters > 0) this.options.onAlarmTicked?.();
    if (ticked.overrides) this.published(ticked.overrides);
  }

  private tickFailed(err: unknown): void {
    (this.options.onTickError ?? ((e: unknown) => process.emitWarning(`fulcrum's weight engine tick failed: ${String(e)}`)))(err);
  }

  private published(overrides: WeightOverrides): void {
    this.options.publish(overrides);
    this.archive(this.options.archive, this.changedSinceArchived(this.options.adaptive.adaptiveWeights()));
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

  private sliceEndpoints(): number {
    return this.options.sliceEndpoints ?? DEFAULT_SLICE_ENDPOINTS;
  }

  private now(): number {
    return (this.options.now ?? monotonicNow)();
  }
}
