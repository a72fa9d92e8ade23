import type { Catalog } from '../catalog/types.js';

/** What a config reload changed, by name: for the reload log line an operator reads. */

export interface NamedChanges {
  readonly added: string[];
  readonly removed: string[];
  readonly changed: string[];
}

export interface CatalogChanges {
  readonly clusters: NamedChanges;
  readonly listeners: NamedChanges;
  readonly nodeGroups: NamedChanges;
}

function diffNamed<T>(before: readonly T[], after: readonly T[], name: (x: T) => string): NamedChanges {
  const old = new Map(before.map((x) => [name(x), JSON.stringify(x)]));
  const next = new Map(after.map((x) => [name(x), JSON.stringify(x)]));
  return {
    added: [...next.keys()].filter((n) => !old.has(n)),
    removed: [...old.keys()].filter((n) => !next.has(n)),
    changed: [...next].filter(([n, text]) => old.has(n) && old.get(n) !== text).map(([n]) => n),
  };
}

export function diffCatalogs(before: Catalog, after: Catalog): CatalogChanges {
  return {
    clusters: diffNamed(before.clusters, after.clusters, (c) => c.name),
    listeners: diffNamed(before.listeners, after.listeners, (l) => l.name),
    nodeGroups: diffNamed(before.nodeGroups, after.nodeGroups, (g) => g.nodeCluster),
  };
}

/** Only the non-empty lists, so the log line shows what changed and nothing else. */
export function changeSummary(changes: CatalogChanges): Record<string, Partial<NamedChanges>> {
  const out: Record<string, Partial<NamedChanges>> = {};
  for (const [kind, c] of Object.entries(changes) as [string, NamedChanges][]) {
    const parts = Object.fromEntries(Object.entries(c).filter(([, names]) => (names as string[]).length > 0));
    if (Object.keys(parts).length > 0) out[kind] = parts;
  }
  return out;
}

/** The top-level keys of two settings objects whose values differ (e.g. `server:` sections: xds, admin, logLevel). */
export function changedKeys(before: object, after: object): string[] {
  const a = before as Record<string, unknown>;
  const b = after as Record<string, unknown>;
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys].filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k])).sort();
}
