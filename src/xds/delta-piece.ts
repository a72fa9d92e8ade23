import protobuf from 'protobufjs';
import type { VersionedResource } from './cache.js';
import type { XdsTypeUrl } from './envoy-api.js';
import { InternTable } from './intern-table.js';

/**
 * A Delta response without its per-stream fields (nonce, control_plane): system_version_info,
 * resources, type_url and removed_resources, encoded once. Protobuf fields may come in any order
 * and the stream appends its own nonce, so every stream that starts from the same state (the
 * same snapshot version and subscription) shares one piece: each changed resource is encoded
 * once per version, not once per stream. Read-only: shared between streams.
 */
export interface DeltaPiece {
  /** The system version it takes the client to (what an ACK or NACK of it is about). */
  readonly version: string;
  readonly head: Uint8Array;
  /** name → version of the resources this piece carries. */
  readonly sent: ReadonlyMap<string, string>;
  readonly removed: readonly string[];
  /**
   * How many resources the subscription resolves to in the target snapshot: after a full
   * update a client holds exactly these, which is how a stream knows it is in sync again.
   */
  readonly resolved: number;
}

/** What a Delta stream's state looks like to the piece builder. */
export interface DeltaView {
  readonly wildcard: boolean;
  readonly names: ReadonlySet<string>;
  /** name → version the client holds. */
  readonly known: ReadonlyMap<string, string>;
}

export type DeltaPhase = 'updates' | 'removals' | 'all';

/** Resources of `pool` the view does not hold at their current version, and held names gone from it. */
export function buildDeltaPiece(
  systemVersion: string,
  type: XdsTypeUrl,
  pool: ReadonlyMap<string, VersionedResource>,
  view: DeltaView,
  phase: DeltaPhase,
): DeltaPiece {
  const resources: VersionedResource[] = [];
  let resolved = 0;
  if (view.wildcard) resolved = pool.size;
  if (phase !== 'removals' || !view.wildcard) {
    for (const name of view.wildcard ? pool.keys() : view.names) {
      const r = pool.get(name);
      if (!r) continue;
      if (!view.wildcard) resolved++;
      if (phase !== 'removals' && view.known.get(name) !== r.version) resources.push(r);
    }
  }
  const removed: string[] = [];
  if (phase !== 'updates') {
    for (const name of view.known.keys()) {
      if (!pool.has(name) && (view.wildcard || view.names.has(name))) removed.push(name);
    }
  }
  return piece(systemVersion, type, resources, removed, resolved);
}

/**
 * The piece `buildDeltaPiece` gives a view in sync (its known versions are exactly what its
 * subscription resolved to) with the content just before `pool`, told from the names that
 * changed since: at most as many lookups as the smaller of those and the subscription, instead of
 * one per subscribed name (a fleet sharing a subscription of 5,000 assignments built each push's
 * piece from all 5,000).
 */
export function buildDeltaPieceFromChanges(
  systemVersion: string,
  type: XdsTypeUrl,
  pool: ReadonlyMap<string, VersionedResource>,
  view: DeltaView,
  phase: DeltaPhase,
  changed: ReadonlySet<string>,
): DeltaPiece {
  const resources: VersionedResource[] = [];
  const removed: string[] = [];
  let resolved = view.known.size;
  const few = view.wildcard || changed.size <= view.names.size ? changed : view.names;
  for (const name of few) {
    if (few === changed ? !view.wildcard && !view.names.has(name) : !changed.has(name)) continue;
    const r = pool.get(name);
    const held = view.known.has(name);
    if (r === undefined) {
      if (!held) continue;
      resolved--;
      if (phase !== 'updates') removed.push(name);
      continue;
    }
    if (!held) resolved++;
    if (phase !== 'removals' && view.known.get(name) !== r.version) resources.push(r);
  }
  return piece(systemVersion, type, resources, removed, view.wildcard ? pool.size : resolved);
}

function piece(systemVersion: string, type: XdsTypeUrl, resources: readonly VersionedResource[], removed: string[], resolved: number): DeltaPiece {
  return { version: systemVersion, head: encodeDeltaHead(systemVersion, type, resources, removed), sent: new Map(resources.map((r) => [r.name, r.version])), removed, resolved };
}

/** Fields 1 (system_version_info), 2 (resources), 4 (type_url) and 6 (removed_resources). */
function encodeDeltaHead(systemVersion: string, type: XdsTypeUrl, resources: readonly VersionedResource[], removed: readonly string[]): Uint8Array {
  const w = protobuf.Writer.create().uint32(10).string(systemVersion);
  for (const r of resources) w.uint32(18).bytes(r.deltaBytes);
  w.uint32(34).string(type);
  for (const n of removed) w.uint32(50).string(n);
  return w.finish();
}

/**
 * Equal keys as one string: a push looks every stream's piece up by its key, and thousands of
 * streams with the same names then compare one pointer instead of kilobytes of names each.
 */
const interned = new InternTable<string>();

/**
 * The key a subscription is shared under: every wildcard stream alike, named ones by their sorted
 * names, JSON-quoted: names may hold any character, so joining them with a separator would give
 * ["a\nb"] and ["a", "b"] one key (and the first stream the other's resources).
 */
export function deltaSubscriptionKey(view: Pick<DeltaView, 'wildcard' | 'names'>): string {
  if (view.wildcard) return '*';
  const key = JSON.stringify([...view.names].sort());
  return interned.get(key, () => key);
}
