import { expect } from 'vitest';
import type { ResourceSet } from '../../src/xds/resource-set.js';

/** An incremental translation's groups hold the very names, in order, and bytes of a whole one's. */
export function expectSameTranslation(incremental: ReadonlyMap<string, ResourceSet>, whole: ReadonlyMap<string, ResourceSet>): void {
  expect([...incremental.keys()].sort()).toEqual([...whole.keys()].sort());
  for (const [key, set] of whole) {
    for (const [type, resources] of set) {
      const mine = incremental.get(key)?.get(type);
      expect([...(mine?.keys() ?? [])], `${JSON.stringify(key)} ${type}`).toEqual([...resources.keys()]);
      for (const [name, r] of resources) expect(Buffer.from(mine?.get(name)?.bytes ?? []).equals(Buffer.from(r.bytes)), `${JSON.stringify(key)} ${name}`).toBe(true);
    }
  }
}
