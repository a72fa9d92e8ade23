import type { WireLoadStatsRequest } from './lrs-codec.js';

/**
 * How often proxies are asked to send load reports. A shorter interval is the quickest way to
 * see a backend fail: the engine can act only on a report (at 2 s a hung backend was out ~2.2 s
 * after it hung; at 1 s `auto` lost a quarter fewer requests to it, bench/RESULTS.md "cadence46").
 * But every report costs fulcrum its entries (~7–10 µs each,
 * bench/RESULTS.md "lrs35"), so the interval follows what the fleet's reports hold: the shortest
 * (`minMs`) while one round of every stream's latest report fits `entriesPerSecond`, stretched
 * as the round grows, never past `maxMs`. At the defaults (1 s, 2 s, 20,000 a second) a fleet
 * costs at most 10,000 entries a second more than a fixed 2 s would, and one that sends 40,000
 * entries a round or more is asked exactly what a fixed 2 s asks.
 *
 * A client that reports more entries than it has (up to a report's bound, MAX_LOAD_REPORT_ENTRIES)
 * can only stretch the interval to `maxMs`, what a fixed interval at the default asked anyway.
 *
 * Pure: the service (lrs-service.ts) tells it about streams and reports, and asks it what to send.
 */
export interface CadenceSettings {
  /** The shortest interval asked. */
  readonly minMs: number;
  /** The longest interval asked (≥ minMs; equal: a fixed interval). */
  readonly maxMs: number;
  /** Report entries a second the interval is stretched to stay within. */
  readonly entriesPerSecond: number;
}

/** Intervals are asked in steps of this: a round that grows by a few entries does not re-ask the fleet. */
export const CADENCE_STEP_MS = 100;

/**
 * A stream already asked is asked again only when the target moved this far from what it was
 * asked (a factor), and not sooner than the hold after its last answer: Envoy drops the ORCA
 * metrics of the interval under way when a new LoadStatsResponse arrives (lrs-service.ts).
 */
export const RETARGET_FACTOR = 1.2;
/** Stretching protects fulcrum: a stream may be re-asked a longer interval this soon after its last answer. */
export const STRETCH_HOLD_MS = 5_000;
/** Shortening is only a gain: a stream is re-asked a shorter interval at most this often. */
export const SHORTEN_HOLD_MS = 30_000;

/** What a stream was last asked. */
export interface Asked {
  readonly ms: number;
  readonly at: number;
}

/** The report entries one request carries: each endpoint's stats, or its locality's when it has none. */
export function reportEntries(req: WireLoadStatsRequest): number {
  let n = 0;
  for (const c of req.cluster_stats ?? []) {
    for (const l of c.upstream_locality_stats ?? []) n += Math.max(1, l.upstream_endpoint_stats?.length ?? 0);
  }
  return n;
}

export class ReportCadence {
  /** Each open stream's entries in its latest report (undefined until it sends one with stats). */
  private readonly latest = new Map<number, number | undefined>();
  private sum = 0;
  private reporting = 0;

  constructor(readonly settings: CadenceSettings) {
    if (!(settings.minMs > 0 && settings.maxMs >= settings.minMs)) throw new RangeError(`report intervals need 0 < min (${settings.minMs}) <= max (${settings.maxMs})`);
    if (!(settings.entriesPerSecond > 0)) throw new RangeError(`entriesPerSecond must be > 0, got ${settings.entriesPerSecond}`);
  }

  opened(stream: number): void {
    if (!this.latest.has(stream)) this.latest.set(stream, undefined);
  }

  /** A report with `entries` entries; a report without stats (the first request) changes nothing. */
  reported(stream: number, entries: number): void {
    if (!this.latest.has(stream) || entries <= 0) return;
    this.forget(stream);
    this.latest.set(stream, entries);
    this.sum += entries;
    this.reporting++;
  }

  closed(stream: number): void {
    this.forget(stream);
    this.latest.delete(stream);
  }

  /**
   * One round's entries: the streams' latest reports, and for a stream that has not reported yet
   * the mean of those that have (after a restart every proxy reconnects before any reports; at
   * least one entry each, so a storm of new streams already counts).
   */
  roundEntries(): number {
    const waiting = this.latest.size - this.reporting;
    const mean = this.reporting > 0 ? this.sum / this.reporting : 1;
    return this.sum + waiting * Math.max(1, mean);
  }

  /** The interval to ask now: the round spread over the budget, in steps, within [minMs, maxMs]. */
  target(): number {
    const { minMs, maxMs, entriesPerSecond } = this.settings;
    const spread = Math.ceil((this.roundEntries() * 1000) / entriesPerSecond / CADENCE_STEP_MS) * CADENCE_STEP_MS;
    return Math.min(maxMs, Math.max(minMs, spread));
  }

  /** Whether a stream asked `asked` is asked again now, and then what (undefined: leave it). `target`: this.target(), read once for a pass over many streams. */
  retarget(asked: Asked, now: number, target = this.target()): number | undefined {
    // Reaching the longest is always asked: it is the bound on what the fleet costs.
    if (target > asked.ms) return (target >= asked.ms * RETARGET_FACTOR || target === this.settings.maxMs) && now - asked.at >= STRETCH_HOLD_MS ? target : undefined;
    if (target < asked.ms) return target * RETARGET_FACTOR <= asked.ms && now - asked.at >= SHORTEN_HOLD_MS ? target : undefined;
    return undefined;
  }

  private forget(stream: number): void {
    const before = this.latest.get(stream);
    if (before === undefined) return;
    this.sum -= before;
    this.reporting--;
  }
}
