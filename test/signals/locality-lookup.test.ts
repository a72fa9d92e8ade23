import { describe, expect, it } from 'vitest';
import { endpointSubZone } from '../../src/catalog/endpoint-localities.js';
import type { Endpoint, Locality } from '../../src/catalog/types.js';
import { LocalityLookup, type LocalityRow } from '../../src/signals/locality-lookup.js';
import { localityId } from '../../src/signals/lrs-conversion.js';
import { endpoint } from '../catalog/helpers.js';

/** The rows Signals keeps for `endpoints`: by locality id, each endpoint's key and position. */
function layout(endpoints: readonly Endpoint[]): Map<string, LocalityRow[]> {
  const rows = new Map<string, LocalityRow[]>();
  endpoints.forEach((e, index) => {
    const id = localityId(e.locality);
    rows.set(id, [...(rows.get(id) ?? []), { key: `${e.address}:${e.port}`, index }]);
  });
  return rows;
}

const at = (address: string, locality: Locality): Endpoint => endpoint(address, 8080, { locality });
const keys = (rows: readonly LocalityRow[]): string[] => rows.map((r) => r.key);

describe('LocalityLookup', () => {
  it('finds a locality by its parts, however its strings would be escaped in an id', () => {
    const odd = { region: 'r"\\', zone: 'z\u2028', subZone: '["x"]' };
    const plain = { region: 'r', zone: 'z', subZone: '' };
    const endpoints = [at('10.0.0.1', odd), at('10.0.0.2', plain), at('10.0.0.3', odd)];
    const lookup = new LocalityLookup(layout(endpoints));
    expect(keys(lookup.find({ ...odd }, endpoints))).toEqual(['10.0.0.1:8080', '10.0.0.3:8080']);
    expect(keys(lookup.find({ ...plain }, endpoints))).toEqual(['10.0.0.2:8080']);
    // Parts that join to the same text are still other localities.
    expect(lookup.find({ region: 'r', zone: 'z', subZone: 'x' }, endpoints)).toEqual([]);
    expect(lookup.find({ region: 'rz', zone: '', subZone: '' }, endpoints)).toEqual([]);
  });

  it("finds a gRPC client's locality for one endpoint only in the endpoint's real locality", () => {
    const a = { region: 'r', zone: 'a', subZone: 's' };
    const endpoints = [at('10.0.0.1', a), at('10.0.0.2', a)];
    const lookup = new LocalityLookup(layout(endpoints));
    expect(keys(lookup.find({ ...a, subZone: endpointSubZone(endpoints[1] as Endpoint) }, endpoints))).toEqual(['10.0.0.2:8080']);
    expect(lookup.find({ ...a, zone: 'b', subZone: endpointSubZone(endpoints[1] as Endpoint) }, endpoints)).toEqual([]);
    expect(lookup.find({ ...a, subZone: 's@10.9.9.9:8080' }, endpoints)).toEqual([]);
  });

  it("a catalog locality named like an endpoint's own is found as itself first", () => {
    const real = { region: 'r', zone: 'a', subZone: 's' };
    const literal = { region: 'r', zone: 'a', subZone: 's@10.0.0.1:8080' };
    const endpoints = [at('10.0.0.1', real), at('10.0.0.2', literal), at('10.0.0.3', literal)];
    const lookup = new LocalityLookup(layout(endpoints));
    expect(keys(lookup.find({ ...literal }, endpoints))).toEqual(['10.0.0.2:8080', '10.0.0.3:8080']);
  });
});
