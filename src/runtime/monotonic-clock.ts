/**
 * The engine's clock: milliseconds since the epoch as of the process start, advancing with the
 * monotonic clock. A step of the wall clock after start (NTP, a VM resumed, an operator's date)
 * moves nothing: with Date.now, a step back of an hour made the engine refuse every new sample as
 * older than the last one and hold ejections an hour longer, so a failing endpoint went unseen for
 * the hour (a review's finding). Samples reported with wall-clock times are converted to ages at
 * ingestion (signals/report-ingest.ts), so they are read against this clock correctly.
 */
export const monotonicNow = (): number => performance.timeOrigin + performance.now();
