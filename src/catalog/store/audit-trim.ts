/**
 * Trimming a large audit record without decoding it (SQLite store). A change to a cluster of 20k
 * endpoints is ~4.5 MB of JSON per side; JSON.parse (or SQLite's JSON functions) spends ~100 ms on
 * each under load, only for the page to throw the endpoint list away. A cluster record is written
 * by this store with `endpoints` as its last key (see Store.clusterRecord), so the settings are
 * the text before the last `,"endpoints":[` and the endpoint count is the number of `"address":`
 * keys after it (one per endpoint record; a quote inside a JSON string is always escaped, so
 * neither sequence can occur inside a value). Anything else is decoded in full, as before.
 */

const LIST = ',"endpoints":[';
const ADDRESS = '"address":';

export interface TrimmedRecord {
  /** The record without its `endpoints`. */
  readonly record: unknown;
  /** How many endpoints it listed; null when it had no endpoint list. */
  readonly endpoints: number | null;
}

export function trimRecordText(text: string): TrimmedRecord {
  const at = text.lastIndexOf(LIST);
  if (at > 0 && text.endsWith(']}')) {
    let endpoints = 0;
    for (let i = text.indexOf(ADDRESS, at); i >= 0; i = text.indexOf(ADDRESS, i + ADDRESS.length)) endpoints++;
    return { record: JSON.parse(`${text.slice(0, at)}}`) as unknown, endpoints };
  }
  const record = JSON.parse(text) as unknown;
  if (typeof record !== 'object' || record === null || !Array.isArray((record as { endpoints?: unknown }).endpoints)) return { record, endpoints: null };
  const { endpoints, ...rest } = record as { endpoints: unknown[] };
  return { record: rest, endpoints: endpoints.length };
}
