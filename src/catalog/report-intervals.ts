/**
 * The load report interval's settings with their defaults, resolved in one place for the config
 * file (sources/config-file.ts) and the LRS service (signals/lrs-service.ts): 1–2 s, stretched by
 * the fleet's reports (signals/report-cadence.ts) within a budget of entries a second.
 */

/** The shortest interval asked by default. */
export const DEFAULT_REPORT_INTERVAL_MS = 1_000;
/** The longest, by default, when `intervalMs` is not set either. */
export const DEFAULT_MAX_REPORT_INTERVAL_MS = 2_000;
/** ~0.15–0.2 of a core at 7–10 µs an entry (bench/RESULTS.md, "lrs35"). */
export const DEFAULT_REPORT_ENTRIES_PER_SECOND = 20_000;

export interface ReportIntervalSettings {
  readonly intervalMs: number;
  readonly maxIntervalMs: number;
  readonly entriesPerSecond: number;
}

/**
 * The settings with their defaults. `intervalMs` set alone is a fixed interval (as before the
 * cadence, so a config that set it keeps what it asked).
 */
export function reportIntervals(o: { readonly [K in keyof ReportIntervalSettings]?: number | undefined } | undefined): ReportIntervalSettings {
  const intervalMs = o?.intervalMs ?? DEFAULT_REPORT_INTERVAL_MS;
  const maxIntervalMs = o?.maxIntervalMs ?? o?.intervalMs ?? DEFAULT_MAX_REPORT_INTERVAL_MS;
  return { intervalMs, maxIntervalMs, entriesPerSecond: o?.entriesPerSecond ?? DEFAULT_REPORT_ENTRIES_PER_SECOND };
}
