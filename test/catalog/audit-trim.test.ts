import { describe, expect, it } from 'vitest';
import { trimRecordText } from '../../src/catalog/store/audit-trim.js';

describe('trimRecordText', () => {
  const endpoint = (i: number) => ({ cluster: 'c', address: `10.0.0.${i}`, port: 80, locality: { region: 'r', zone: '"endpoints":[', subZone: '' }, state: 'active' });

  it('cuts a cluster record\'s endpoint list off its text and counts it, without decoding the list', () => {
    const record = { name: 'c', probe: { path: '/,"endpoints":[x' }, owner: 'api', revision: 3, endpoints: [1, 2, 3].map(endpoint) };
    expect(trimRecordText(JSON.stringify(record))).toEqual({ record: { name: 'c', probe: { path: '/,"endpoints":[x' }, owner: 'api', revision: 3 }, endpoints: 3 });
    expect(trimRecordText(JSON.stringify({ ...record, endpoints: [] }))).toEqual({ record: { name: 'c', probe: { path: '/,"endpoints":[x' }, owner: 'api', revision: 3 }, endpoints: 0 });
  });

  it('decodes in full what is not shaped like that: another key order, no endpoint list', () => {
    expect(trimRecordText(JSON.stringify({ endpoints: [endpoint(1)], name: 'c' }))).toEqual({ record: { name: 'c' }, endpoints: 1 });
    expect(trimRecordText(JSON.stringify({ name: 'l', routes: [] }))).toEqual({ record: { name: 'l', routes: [] }, endpoints: null });
  });
});
