import type { Cluster } from '../../src/catalog/types.js';

/**
 * Steps the random incremental publish tests share (the weight loop's hand-overs are in
 * random-weights.ts): drawing one write by weight, and rewrites of the cluster list that keep
 * every cluster's content. All draw from the test's seeded `r`, in a fixed order, so a seed
 * replays the same sequence.
 */

/** A write the sequence may take: its weight and the write itself, which returns its label. */
export type WeightedWrite = readonly [weight: number, write: () => string];

/** Draws one of `writes` by weight and runs it; returns its label. */
export function runWeighted(r: () => number, writes: readonly WeightedWrite[]): string {
  let x = r() * writes.reduce((s, [w]) => s + w, 0);
  for (const [w, write] of writes) {
    if ((x -= w) < 0) return write();
  }
  return 'nothing';
}

export const byName = (a: Cluster, b: Cluster): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/** The clusters in a random order (Fisher-Yates). */
export function shuffled(r: () => number, clusters: readonly Cluster[]): Cluster[] {
  const out = [...clusters];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [out[i], out[j]] = [out[j] as Cluster, out[i] as Cluster];
  }
  return out;
}

/** Every cluster a new, equal object (a store that re-read its data). */
export function reread(clusters: readonly Cluster[]): Cluster[] {
  return clusters.map((c) => ({ ...c, endpoints: c.endpoints.map((e) => ({ ...e })) }));
}
