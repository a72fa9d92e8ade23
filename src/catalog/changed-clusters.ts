import type { Cluster } from './types.js';

/**
 * The clusters of `after` that are other objects than those at the same positions of `before`,
 * found by identity: the stores keep an unchanged cluster the same object (catalog-view.ts), so
 * after one endpoint write this is that one cluster, found by pointer compares alone. At 1,000
 * clusters, rebuilding a by-name map per stage per write was most of what a one-endpoint write
 * cost the stages after the store. Undefined when a name was added, removed or moved: the caller
 * then compares the whole catalog by name.
 */
export function changedInPlace(before: readonly Cluster[], after: readonly Cluster[]): readonly Cluster[] | undefined {
  if (last.before !== before || last.after !== after) last = { before, after, changed: compare(before, after) };
  return last.changed;
}

/**
 * The last answer: every stage that follows the catalog asks about the same two lists after a
 * write (the feed, the signals, the weights, the translator), so one pass serves them all. The
 * lists are never mutated, so their identity is their content.
 */
let last: { before: readonly Cluster[]; after: readonly Cluster[]; changed: readonly Cluster[] | undefined } = { before: [], after: [], changed: [] };

function compare(before: readonly Cluster[], after: readonly Cluster[]): readonly Cluster[] | undefined {
  if (before.length !== after.length) return undefined;
  const changed: Cluster[] = [];
  for (let i = 0; i < after.length; i++) {
    const a = before[i];
    const b = after[i];
    if (a === b) continue;
    if (a === undefined || b === undefined || a.name !== b.name) return undefined;
    changed.push(b);
  }
  return changed;
}

/** How `after` differs from `before` by name: clusters other or new, and names gone. */
export interface ChangesByName {
  readonly changed: readonly Cluster[];
  readonly removed: readonly string[];
}

/**
 * changedInPlace's counterpart for lists whose names differ (a cluster created or deleted): one
 * pass over both. Kept for the last two lists, as changedInPlace is, since the translator asks
 * twice per publication (what to encode ahead, then what to translate).
 */
export function changedByName(before: readonly Cluster[], after: readonly Cluster[]): ChangesByName {
  if (lastByName.before !== before || lastByName.after !== after) lastByName = { before, after, changes: byName(before, after) };
  return lastByName.changes;
}

let lastByName: { before: readonly Cluster[]; after: readonly Cluster[]; changes: ChangesByName } = { before: [], after: [], changes: { changed: [], removed: [] } };

/** How `after` differs from `before`, and whether names were added, removed or moved. */
export interface ClusterChanges extends ChangesByName {
  readonly renamed: boolean;
}

const NONE_REMOVED: readonly string[] = [];

/**
 * What every stage following the catalog asks after a write: by identity when the names are the
 * same (changedInPlace), else by name (changedByName).
 */
export function changedClusters(before: readonly Cluster[], after: readonly Cluster[]): ClusterChanges {
  const inPlace = changedInPlace(before, after);
  return inPlace === undefined ? { ...changedByName(before, after), renamed: true } : { changed: inPlace, removed: NONE_REMOVED, renamed: false };
}

function byName(before: readonly Cluster[], after: readonly Cluster[]): ChangesByName {
  if (!isSorted(before)) return byMap(before, after);
  const walked = byMergeWalk(before, after);
  // The walk tells `after`'s order either way: it stops only at a cluster out of order.
  sortedLists.set(after, walked !== undefined);
  return walked ?? byMap(before, after);
}

/**
 * `before` in code-unit name order (as the stores list them): one walk over both in step, with
 * names compared only where the objects differ (a map of every name cost ~3.6 ms at 10,000
 * clusters). `after` is in order too when every cluster the walk meets out of step sits between
 * its neighbours (the others keep `before`'s order); undefined when one does not.
 */
function byMergeWalk(before: readonly Cluster[], after: readonly Cluster[]): ChangesByName | undefined {
  const changed: Cluster[] = [];
  const removed: string[] = [];
  let i = 0;
  let j = 0;
  while (i < before.length || j < after.length) {
    const b = before[i];
    const a = after[j];
    if (a === b) {
      i++;
      j++;
      continue;
    }
    if (a === undefined || (b !== undefined && b.name < a.name)) {
      removed.push((b as Cluster).name);
      i++;
      continue;
    }
    if (!inPlaceByName(after, j)) return undefined;
    changed.push(a);
    if (b !== undefined && a.name === b.name) i++;
    j++;
  }
  return { changed, removed };
}

/** Whether after[j]'s name is above its predecessor's and below its successor's. */
function inPlaceByName(after: readonly Cluster[], j: number): boolean {
  const name = (after[j] as Cluster).name;
  const prev = after[j - 1];
  const next = after[j + 1];
  return (prev === undefined || prev.name < name) && (next === undefined || name < next.name);
}

function byMap(before: readonly Cluster[], after: readonly Cluster[]): ChangesByName {
  const seen = new Map<string, Cluster>();
  for (const c of before) seen.set(c.name, c);
  const changed: Cluster[] = [];
  for (const c of after) {
    if (seen.get(c.name) !== c) changed.push(c);
    seen.delete(c.name);
  }
  return { changed, removed: [...seen.keys()] };
}

/** Whether each list is in strictly ascending code-unit name order (lists are never mutated): checked name by name, or told by a walk from an ordered list. */
const sortedLists = new WeakMap<readonly Cluster[], boolean>();

function isSorted(list: readonly Cluster[]): boolean {
  let sorted = sortedLists.get(list);
  if (sorted === undefined) {
    sorted = true;
    for (let i = 1; i < list.length && sorted; i++) sorted = (list[i - 1] as Cluster).name < (list[i] as Cluster).name;
    sortedLists.set(list, sorted);
  }
  return sorted;
}

/**
 * Whether two lists hold the very same items in the same order. The stores and the catalog's
 * sources keep an unchanged object (and list) the same, and the stages after them key their
 * memos by that identity, so a source that builds lists anew hands back its last list when
 * this holds.
 */
export function sameItems<T>(a: readonly T[], b: readonly T[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
