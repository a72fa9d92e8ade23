/**
 * The bounded summary of a large audit record, written with it (SQLite `audit.summary`, schema
 * version 3), so that a page of the log reads a few hundred bytes per entry instead of having
 * SQLite hand megabytes of endpoint lists to JavaScript for `trimRecordText` to throw away.
 * Records written before version 3 have none and are trimmed at read time, as before.
 */
import { trimRecordText, type TrimmedRecord } from './audit-trim.js';
import type { AuditTrim } from './records.js';

/** Records smaller than this (before and after together, bytes) get no summary: a page reads them whole. */
export const SUMMARY_OVER = 16 * 1024;

/** What `audit.summary` holds: both sides without their endpoint lists, and the endpoint counts. */
export interface StoredSummary {
  readonly before: unknown;
  readonly after: unknown;
  readonly endpoints: AuditTrim['endpoints'];
}

/** The summary column's text for a record stored as `before` / `after`, or null when it is small. */
export function auditSummary(before: string | null, after: string | null): string | null {
  const size = (before?.length ?? 0) + (after?.length ?? 0);
  return summaryIfLarge(size, () => (before === null ? null : trimRecordText(before)), () => (after === null ? null : trimRecordText(after)));
}

/**
 * The summary column's text for a record of `size` characters whose sides, without their endpoint
 * lists, `before` and `after` give (asked only when the record is large); null when it is small.
 */
export function summaryIfLarge(size: number, before: () => TrimmedRecord | null, after: () => TrimmedRecord | null): string | null {
  if (size < SUMMARY_OVER) return null;
  const b = before();
  const a = after();
  const summary: StoredSummary = { before: b?.record ?? null, after: a?.record ?? null, endpoints: { before: b?.endpoints ?? null, after: a?.endpoints ?? null } };
  return JSON.stringify(summary);
}

export function parseSummary(text: string): StoredSummary {
  return JSON.parse(text) as StoredSummary;
}
