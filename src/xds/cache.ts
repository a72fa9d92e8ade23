import { createHash } from 'node:crypto';
import protobuf from 'protobufjs';
import { ArrayMap, withValues } from '../balancing/engine/indexed-map.js';
import type { DeltaPhase, DeltaPiece } from './delta-piece.js';
import { PUSH_ORDER, type XdsTypeUrl } from './envoy-api.js';
import { InternTable } from './intern-table.js';
import type { EncodedResource } from './resource.js';
import { DEFAULT_GROUP, derivationOf, positionalOf, type ResourceSet } from './resource-set.js';
import { formGroupKey, type ClientForm } from './client-form.js';

/** A resource with the version streams announce; shared by every snapshot that holds it unchanged. */
export interface VersionedResource extends EncodedResource {
  /** The resource's hash (deltaBytes carries it). */
  readonly version: string;
  /** The version's 96 bits as three unsigned 32-bit words, what set versions add up (setVersion). */
  readonly versionWords: readonly [number, number, number];
}

/** What a SotW response carries before the per-stream nonce is appended. Shared by streams: read-only. */
export interface SotwBody {
  /** The set version of the resources carried (setVersion): what version_info says. */
  readonly version: string;
  /**
   * The version earlier releases gave the same body (a hash of its names and versions in order):
   * a proxy reconnecting after an upgrade announces it, and is resumed on it (sotw-stream.ts).
   * Computed on first read: a first request announcing a version other than the current one (once
   * per body, shared by every stream on it).
   */
  readonly legacyVersion: string;
  readonly bytes: Uint8Array;
  readonly names: readonly string[];
  readonly resources: readonly VersionedResource[];
  /** name → version of what the body carries (for membership tests and proxy status). */
  readonly versions: ReadonlyMap<string, string>;
}

/** A stream's subscription in the form snapshots memoize on: computed once per subscription change. */
export interface Subscription {
  readonly all: boolean;
  /** Sorted, de-duplicated names (ignored when `all`). */
  readonly names: readonly string[];
  readonly key: string;
}

/**
 * How one type's resources differ from the snapshot before (of the same group): the names whose
 * resource was added, replaced or removed. A push wakes every stream of the group; one whose
 * subscription names none of these, and which had nothing left to do with the snapshot before,
 * has nothing to do with this one either: it checks the few changed names instead of resolving
 * its whole subscription again (a fleet of clients that each name their own clusters, as
 * proxyless gRPC clients do, paid for every stream's every name on every push).
 */
export interface TypeChange {
  /** The content token (Snapshot.contentToken) of the type in the snapshot before. */
  readonly from: object;
  /** The type version before (Snapshot.typeVersion), when it was known when this one was made. */
  readonly fromVersion: string | undefined;
  readonly names: ReadonlySet<string>;
}

/** Whether any of `changed` is in `names` (walks the smaller of the two). */
export function touches(changed: ReadonlySet<string>, names: ReadonlySet<string>): boolean {
  if (changed.size > names.size) return touches(names, changed);
  for (const name of changed) if (names.has(name)) return true;
  return false;
}

/**
 * Equal subscriptions as one object: thousands of proxies ask for the same names, and a push
 * looks each stream's body up by `key`. Shared, the key is one string, and the lookup compares
 * pointers instead of kilobytes of names per stream (and the names are held once).
 */
const interned = new InternTable<Subscription>();

export function subscription(type: XdsTypeUrl, all: boolean, names: Iterable<string>): Subscription {
  const sorted = all ? [] : [...new Set(names)].sort();
  // JSON-quoted: a name may hold any character, so a separator alone would make ["a\nb"] and ["a", "b"] one key.
  const key = all ? `${type}\n*` : `${type}\n${JSON.stringify(sorted)}`;
  return interned.get(key, () => ({ all, names: sorted, key }));
}

/** `map`'s value for `key`, made and kept there on first need. */
function kept<K, V>(map: Map<K, V>, key: K, make: () => V): V {
  let v = map.get(key);
  if (v === undefined) {
    v = make();
    map.set(key, v);
  }
  return v;
}

const BODY_MEMO_LIMIT = 256;

function remember<V>(memo: Map<string, V>, key: string, value: V): V {
  if (memo.size >= BODY_MEMO_LIMIT) memo.clear();
  memo.set(key, value);
  return value;
}

/**
 * A memo under two keys compared by identity (shared bodies, interned or constant strings), so a
 * lookup per stream builds no key string. Bounded like the others.
 */
class PairMemo<A, B, V> {
  private readonly byFirst = new Map<A, Map<B, V>>();

  get(a: A, b: B): V | undefined {
    return this.byFirst.get(a)?.get(b);
  }

  set(a: A, b: B, value: V): V {
    let bySecond = this.byFirst.get(a);
    if (!bySecond) {
      if (this.byFirst.size >= BODY_MEMO_LIMIT) this.byFirst.clear();
      bySecond = new Map();
      this.byFirst.set(a, bySecond);
    }
    if (bySecond.size >= BODY_MEMO_LIMIT) bySecond.clear();
    bySecond.set(b, value);
    return value;
  }
}

export class Snapshot {
  /** By the selected (existing) names, so different subscriptions that resolve alike share a body. */
  private readonly bodies = new Map<string, SotwBody>();
  /** By subscription key: the common case (thousands of identical subscriptions) is one lookup. */
  private readonly bySubscription = new Map<string, SotwBody>();
  /** By the body a client holds, then the body it should hold: the response between them. */
  private readonly updates = new PairMemo<SotwBody, SotwBody, SotwBody | null>();
  private readonly keeps = new PairMemo<SotwBody, SotwBody, SotwBody | null>();
  /** By type and phase, then the version in sync with and the (interned) subscription key. */
  private readonly deltaPieces = new PairMemo<XdsTypeUrl, DeltaPhase, PairMemo<string, string, DeltaPiece>>();
  private readonly typeVersions = new Map<XdsTypeUrl, string>();
  /** Per type, its resources' version words added up (setVersion), once known. */
  private readonly wordSums: Map<XdsTypeUrl, Uint32Array>;
  private readonly held = new PairMemo<XdsTypeUrl, string, ReadonlyMap<string, string>>();
  private readonly tokens = new Map<XdsTypeUrl, object>();

  private contentHash: string | undefined;

  constructor(
    readonly group: string,
    /** This process's publication counter (for operators); never sent to a client. */
    readonly seq: number,
    private readonly byType: ReadonlyMap<XdsTypeUrl, ReadonlyMap<string, VersionedResource>>,
    /**
     * Per type whose resources are unchanged since an earlier snapshot: that snapshot, which
     * answers its type version and SotW bodies. One endpoint write then costs streams nothing for
     * the other types (a wildcard CDS body over 1,000 clusters, its version hash: ~1 ms each per
     * publish), and a stream holding the earlier body holds the same object. Always the snapshot
     * that computed the type, never a chain: a snapshot keeps at most one earlier one per type.
     */
    private readonly origins: ReadonlyMap<XdsTypeUrl, Snapshot> = new Map(),
    /** Per type, the word sum when the cache derived it from the previous snapshot's (XdsCache.update). */
    sums: ReadonlyMap<XdsTypeUrl, Uint32Array> = new Map(),
    /** Per type computed here, how it differs from the snapshot before, when the cache knows. */
    private readonly changes: ReadonlyMap<XdsTypeUrl, TypeChange> = new Map(),
  ) {
    this.wordSums = new Map(sums);
  }

  /**
   * An object standing for this snapshot's content of `type` (its origin's): the same object in
   * every snapshot that carries the type unchanged. A stream keeps it to say which content it
   * has nothing left to do with; an empty object, so a stream that lags keeps no snapshot alive.
   */
  contentToken(type: XdsTypeUrl): object {
    const origin = this.origins.get(type);
    return origin ? origin.contentToken(type) : kept(this.tokens, type, () => ({}));
  }

  /** How `type` differs from the snapshot before its content (its origin's change), if known. */
  changeOf(type: XdsTypeUrl): TypeChange | undefined {
    const origin = this.origins.get(type);
    return origin ? origin.changeOf(type) : this.changes.get(type);
  }

  /** The type's version if its word sum is known already (not added up for the asking). */
  knownTypeVersion(type: XdsTypeUrl): string | undefined {
    const origin = this.origins.get(type);
    if (origin) return origin.knownTypeVersion(type);
    const sum = this.wordSums.get(type);
    return this.typeVersions.get(type) ?? (sum === undefined ? undefined : this.typeVersion(type));
  }

  /** The snapshot whose resources of `type` these are, computed there first (this one if they changed). */
  originOf(type: XdsTypeUrl): Snapshot {
    return this.origins.get(type) ?? this;
  }

  /**
   * A hash of every type's version (so of every resource's name and version): equal content,
   * equal version, on every replica. Computed on first read (Delta streams read it as
   * system_version_info, which Envoy only logs; a SotW-only fleet never does).
   */
  get version(): string {
    return (this.contentHash ??= hashText(rowsText([...this.byType.keys()].map((type) => [type, this.typeVersion(type)]))));
  }

  resources(type: XdsTypeUrl): ReadonlyMap<string, VersionedResource> {
    return this.byType.get(type) ?? new Map();
  }

  /**
   * The set version of the type's resources (setVersion): a Delta stream in sync with it has
   * nothing to do when a change touched only other types, and streams in sync with it share their
   * next piece.
   */
  typeVersion(type: XdsTypeUrl): string {
    const origin = this.origins.get(type);
    return origin ? origin.typeVersion(type) : kept(this.typeVersions, type, () => encodeWords(this.wordSum(type)));
  }

  /** The type's word sum, added up on first need. */
  private wordSum(type: XdsTypeUrl): Uint32Array {
    const origin = this.origins.get(type);
    return origin ? origin.wordSum(type) : kept(this.wordSums, type, () => wordSum(this.resources(type)));
  }

  /** The type's word sum if already known (not added up for the asking). */
  knownWordSum(type: XdsTypeUrl): Uint32Array | undefined {
    const origin = this.origins.get(type);
    return origin ? origin.knownWordSum(type) : this.wordSums.get(type);
  }

  /**
   * The encoded SotW response body (version_info, resources, type_url) for a subscription.
   * Memoized: the thousands of proxies that ask for the same set share one buffer, and only the
   * nonce is written per stream.
   */
  sotwBody(type: XdsTypeUrl, sub: Subscription): SotwBody {
    const origin = this.origins.get(type);
    if (origin) return origin.sotwBody(type, sub);
    const hit = this.bySubscription.get(sub.key);
    if (hit) return hit;
    const pool = this.resources(type);
    const { resources, names } = selected(pool, sub);
    const key = `${type}\n${names.join('\n')}`;
    let body = this.bodies.get(key);
    if (body === undefined) {
      // Every resource of the type (a wildcard, or an Envoy naming every cluster's assignment): the type's version, already kept.
      const version = resources.length === pool.size ? this.typeVersion(type) : setVersion(resources);
      body = remember(this.bodies, key, encodeBody(version, type, resources));
    }
    return remember(this.bySubscription, sub.key, body);
  }

  /**
   * For EDS and RDS, whose SotW responses are incremental (absence is not deletion): the response
   * taking a client from `prev` to `next` carries only the resources whose version changed, under
   * `next`'s version_info. One weight change then costs each stream one ClusterLoadAssignment,
   * not all of them. Memoized per pair; undefined when nothing changed.
   */
  sotwUpdate(type: XdsTypeUrl, prev: SotwBody, next: SotwBody): SotwBody | undefined {
    const memo = this.updates.get(prev, next);
    if (memo !== undefined) return memo ?? undefined;
    const changed = changedResources(prev, next);
    const update = changed.length > 0 ? encodeBody(next.version, type, changed) : null;
    return this.updates.set(prev, next, update) ?? undefined;
  }

  /**
   * For LDS and CDS (absence is deletion): `next` plus what `prev` held that `next` drops, so a
   * push can add before it removes (make-before-break). Memoized per pair, so the fleet's streams
   * share one merged body; undefined when nothing is dropped.
   */
  keepRemoved(type: XdsTypeUrl, prev: SotwBody, next: SotwBody): SotwBody | undefined {
    if (prev.version === next.version) return undefined;
    const memo = this.keeps.get(prev, next);
    if (memo !== undefined) return memo ?? undefined;
    const keep = prev.resources.filter((r) => !next.versions.has(r.name));
    const merged = keep.length === 0 ? null : buildSotwBody(type, [...next.resources, ...keep].sort((a, b) => (a.name < b.name ? -1 : 1)));
    return this.keeps.set(prev, next, merged) ?? undefined;
  }

  /**
   * The Delta response piece taking a client from one state (`phase` of `type`, in sync with
   * version `from`, '' when it holds nothing; `sub`: its interned subscription key) to this
   * snapshot; built by the first stream that needs it (`rememberDeltaPiece`), shared by every
   * other stream in the same state.
   */
  deltaPiece(type: XdsTypeUrl, phase: DeltaPhase, from: string, sub: string): DeltaPiece | undefined {
    return this.deltaPieces.get(type, phase)?.get(from, sub);
  }

  /** Keeps the piece `deltaPiece` returns for the same state from now on; returns it. */
  rememberDeltaPiece(type: XdsTypeUrl, phase: DeltaPhase, from: string, sub: string, piece: DeltaPiece): DeltaPiece {
    const memo = this.deltaPieces.get(type, phase) ?? this.deltaPieces.set(type, phase, new PairMemo<string, string, DeltaPiece>());
    return memo.set(from, sub, piece);
  }

  /**
   * name → version of what a Delta client in sync with this snapshot's `type` holds under
   * subscription `sub`: one read-only map shared by all such streams (for proxy status), made
   * from the first one's own (`held`), instead of a private copy per stream.
   */
  heldVersions(type: XdsTypeUrl, sub: string, held: ReadonlyMap<string, string>): ReadonlyMap<string, string> {
    return this.held.get(type, sub) ?? this.held.set(type, sub, new Map(held));
  }

  /** The map `heldVersions` keeps for `sub`, if a stream made it already. */
  heldVersionsMade(type: XdsTypeUrl, sub: string): ReadonlyMap<string, string> | undefined {
    return this.held.get(type, sub);
  }
}

/**
 * Adds to `changed` the names of `before` that `input` no longer has. The update loops saw every
 * name of `input`; only when they found fewer of `before`'s than it holds is it walked again.
 */
function addRemoved(before: ReadonlyMap<string, VersionedResource>, input: ReadonlyMap<string, EncodedResource>, changed: Set<string>): void {
  let added = 0;
  for (const name of changed) if (!before.has(name)) added++;
  if (input.size - added === before.size) return;
  for (const name of before.keys()) if (!input.has(name)) changed.add(name);
}

function encodeBody(version: string, type: XdsTypeUrl, resources: readonly VersionedResource[]): SotwBody {
  return new LazySotwBody(version, type, resources);
}

/**
 * A body whose bytes, names and version map are built on first read: a publish builds the new
 * snapshot's full EDS body only to diff it against what streams hold (`sotwUpdate` reads the
 * version and resources), so copying every ClusterLoadAssignment into one buffer per change
 * is paid only when a stream needs the whole body (a new or re-subscribing stream).
 */
class LazySotwBody implements SotwBody {
  private encoded: Uint8Array | undefined;
  private nameList: readonly string[] | undefined;
  private versionMap: ReadonlyMap<string, string> | undefined;
  private legacy: string | undefined;

  constructor(
    readonly version: string,
    private readonly type: XdsTypeUrl,
    readonly resources: readonly VersionedResource[],
  ) {}

  get bytes(): Uint8Array {
    if (this.encoded === undefined) {
      const w = protobuf.Writer.create().uint32(10).string(this.version);
      for (const r of this.resources) w.uint32(18).bytes(r.anyBytes);
      this.encoded = w.uint32(34).string(this.type).finish();
    }
    return this.encoded;
  }

  get names(): readonly string[] {
    return (this.nameList ??= this.resources.map((r) => r.name));
  }

  get versions(): ReadonlyMap<string, string> {
    return (this.versionMap ??= new Map(this.resources.map((r) => [r.name, r.version])));
  }

  get legacyVersion(): string {
    return (this.legacy ??= hashText(rowsText(this.resources.map((r) => [r.name, r.version]))));
  }
}

/** Encodes version_info, resources and type_url; the version is the set version of the resources carried. */
export function buildSotwBody(type: XdsTypeUrl, resources: readonly VersionedResource[]): SotwBody {
  return encodeBody(setVersion(resources), type, resources);
}

/**
 * The version of a set of resources: the sum of their versions' 96 bits, word by word modulo
 * 2^32, as 16 base64url characters. A resource's version is a hash of its bytes, name included,
 * so equal sets get equal versions on every replica and after every restart, whatever their
 * order; two sets differing in one resource never share a version, and sets differing in more
 * share one by a 2^-96 chance (not a cryptographic guarantee: someone choosing many resources'
 * content could build a collision, which takes the admin API's write access). Adding up three words
 * per resource replaced hashing a text of every name and version: at 10,000 clusters an endpoint
 * write's type version, snapshot version and an Envoy's EDS body (all 10,000 names) each hashed
 * ~400 KB, ~25 ms per write in all (bench/RESULTS.md, order21).
 */
export function setVersion(resources: readonly VersionedResource[] | ReadonlyMap<string, VersionedResource>): string {
  return encodeWords(wordSum(resources));
}

/** The resources' version words added up, word by word modulo 2^32. */
function wordSum(resources: readonly VersionedResource[] | ReadonlyMap<string, VersionedResource>): Uint32Array {
  // By index where there is an array (a positional map's values are one): a generator per map
  // cost more than the sums.
  const list = Array.isArray(resources) ? resources : resources instanceof ArrayMap ? (resources as ArrayMap<VersionedResource>).valueList : [...resources.values()];
  const sum = new Uint32Array(3);
  for (let i = 0; i < list.length; i++) addWords(sum, (list[i] as VersionedResource).versionWords, 1);
  return sum;
}

/** `sum` plus (sign 1) or minus (sign -1) one resource's words, in place (a Uint32Array wraps modulo 2^32). */
function addWords(sum: Uint32Array, words: readonly [number, number, number], sign: 1 | -1): void {
  sum[0] = (sum[0] as number) + sign * words[0];
  sum[1] = (sum[1] as number) + sign * words[1];
  sum[2] = (sum[2] as number) + sign * words[2];
}

/**
 * `base` with each pair's first resource taken out and its second put in: the word sum of a map
 * derived from another by replacing a few values, without reading the others (at 10,000
 * clusters, adding up every resource's words read 10,000 cold objects per publish).
 */
function swappedSum(base: Uint32Array, swaps: readonly (readonly [VersionedResource, VersionedResource])[]): Uint32Array {
  const sum = base.slice();
  for (const [out, into] of swaps) {
    addWords(sum, out.versionWords, -1);
    addWords(sum, into.versionWords, 1);
  }
  return sum;
}

function encodeWords(sum: Uint32Array): string {
  const out = Buffer.allocUnsafe(12);
  out.writeUInt32BE(sum[0] as number, 0);
  out.writeUInt32BE(sum[1] as number, 4);
  out.writeUInt32BE(sum[2] as number, 8);
  return out.toString('base64url');
}

/** A resource version's (16 base64url characters, 96 bits) three words. */
function versionWords(version: string): [number, number, number] {
  const bits = Buffer.from(version, 'base64url');
  if (bits.length !== 12) throw new Error(`cache: a resource version must carry 96 bits, got ${bits.length * 8}`);
  return [bits.readUInt32BE(0), bits.readUInt32BE(4), bits.readUInt32BE(8)];
}

/**
 * A subscription's resources of `pool` and their names: every one in name order for a wildcard,
 * else the named that exist, in name order (the subscription's own list when all do: no
 * resource read for its name).
 */
function selected(pool: ReadonlyMap<string, VersionedResource>, sub: Subscription): { resources: VersionedResource[]; names: readonly string[] } {
  if (sub.all) {
    const names = [...pool.keys()].sort();
    return { resources: names.map((n) => pool.get(n) as VersionedResource), names };
  }
  const resources: VersionedResource[] = [];
  let missing: string[] | undefined;
  for (const name of sub.names) {
    const r = pool.get(name);
    if (r !== undefined) resources.push(r);
    else (missing ??= []).push(name);
  }
  if (missing === undefined) return { resources, names: sub.names };
  const gone = new Set(missing);
  return { resources, names: sub.names.filter((n) => !gone.has(n)) };
}

/**
 * The resources of `next` whose version `prev` does not hold. Two bodies of one subscription
 * mostly carry the same names in the same order: compared by position then, without a map of
 * `prev`'s versions (10,000 entries for an Envoy's EDS subscription at 10,000 clusters).
 */
function changedResources(prev: SotwBody, next: SotwBody): VersionedResource[] {
  const a = prev.resources;
  const b = next.resources;
  const out: VersionedResource[] = [];
  if (a.length === b.length) {
    let i = 0;
    for (; i < b.length; i++) {
      const r = b[i] as VersionedResource;
      const was = a[i] as VersionedResource;
      // The same object: the same name and version, neither read.
      if (r === was) continue;
      if (r.name !== was.name) break;
      if (r.version !== was.version) out.push(r);
    }
    if (i === b.length) return out;
    out.length = 0;
  }
  for (const r of b) if (prev.versions.get(r.name) !== r.version) out.push(r);
  return out;
}

/**
 * The text earlier releases hashed into a body's version (each field, NUL, each row, LF; NUL
 * separated, so ['ab','c'] and ['a','bc'] differ): kept for SotwBody.legacyVersion.
 */
function rowsText(rows: Iterable<readonly string[]>): string {
  let text = '';
  for (const row of rows) {
    for (const field of row) text += `${field}\0`;
    text += '\n';
  }
  return text;
}

function hashText(text: string): string {
  return createHash('sha256').update(text).digest('base64url').slice(0, 16);
}

/**
 * What a stream state machine reads from the cache: its proxy's snapshot. The seam the stream
 * unit tests fake or fill in memory (go-control-plane's servers see their cache the same way).
 */
export interface SnapshotSource {
  snapshotFor(nodeCluster: string, form?: ClientForm): Snapshot;
}

export type CacheListener = (changedGroups: ReadonlySet<string>) => void;

/**
 * Versioned resources per node group. Every version is a hash of content and nothing else, so all
 * replicas serving the same state announce the same versions, and an Envoy that reconnects to
 * another replica (or to this one after a restart) is sent only what it does not hold. What a
 * process-start prefix used to guard against, a version reused for other content, cannot happen:
 * a version names its bytes (a resource's is the hash of its encoding; a response's the set
 * version of the resources it carries), so equal versions mean the client holds exactly this.
 * A snapshot keeps the order of the maps it was made from, which may lag a reorder-only change
 * (no push) until the type next changes; no version and no SotW body depends on that order
 * (bodies list their resources by name).
 */
export class XdsCache implements SnapshotSource {
  private snapshots = new Map<string, Snapshot>();
  /** The resource sets the snapshots were made from, by group (what a derived input is compared against). */
  private taken: ReadonlyMap<string, ResourceSet> = new Map();
  private readonly listeners = new Set<CacheListener>();
  private seq = 0;

  constructor() {
    this.snapshots.set(DEFAULT_GROUP, new Snapshot(DEFAULT_GROUP, 0, new Map()));
  }

  /** Replaces every group's resources; listeners hear only about groups whose content changed. */
  update(groups: ReadonlyMap<string, ResourceSet>): ReadonlySet<string> {
    const changed = new Set<string>();
    const next = new Map<string, Snapshot>();
    for (const [group, set] of groups) {
      const prev = this.snapshots.get(group);
      const taken = this.taken.get(group);
      const byType = new Map<XdsTypeUrl, ReadonlyMap<string, VersionedResource>>();
      const origins = new Map<XdsTypeUrl, Snapshot>();
      const sums = new Map<XdsTypeUrl, Uint32Array>();
      const changes = new Map<XdsTypeUrl, TypeChange>();
      let differs = !prev;
      for (const type of PUSH_ORDER) {
        const input = set.get(type) ?? new Map<string, EncodedResource>();
        const before = prev?.resources(type);
        const takenType = taken?.get(type);
        const swaps: [VersionedResource, VersionedResource][] = [];
        const names = new Set<string>();
        const out = this.typeUpdate(before, takenType, input, swaps, names);
        if (prev && out === before) origins.set(type, prev.originOf(type));
        else differs = true;
        if (prev && out !== before) changes.set(type, { from: prev.contentToken(type), fromVersion: prev.knownTypeVersion(type), names });
        byType.set(type, out);
        // A few resources replaced in the previous map: its word sum moved by theirs alone.
        const base = swaps.length > 0 && out !== before ? prev?.knownWordSum(type) : undefined;
        if (base !== undefined) sums.set(type, swappedSum(base, swaps));
      }
      if (differs) {
        changed.add(group);
        next.set(group, new Snapshot(group, ++this.seq, byType, origins, sums, changes));
      } else if (prev) {
        next.set(group, prev);
      }
    }
    for (const group of this.snapshots.keys()) if (!next.has(group)) changed.add(group);
    this.snapshots = next;
    this.taken = groups;
    if (changed.size > 0) for (const l of this.listeners) l(changed);
    return changed;
  }

  /**
   * One type's versioned resources (the previous map itself when nothing in it changed): the
   * unchanged ones are the previous snapshot's objects. When
   * the translator says the input is the one taken last time with a few names replaced
   * (`derivationOf`), only those are compared; otherwise every resource is.
   */
  private typeUpdate(
    before: ReadonlyMap<string, VersionedResource> | undefined,
    taken: ReadonlyMap<string, EncodedResource> | undefined,
    input: ReadonlyMap<string, EncodedResource>,
    /** Filled with [before, after] per resource replaced, when the result is `before` with those replaced. */
    swaps: [VersionedResource, VersionedResource][],
    /** Filled with the names added, replaced or removed since `before`. */
    changed: Set<string>,
  ): ReadonlyMap<string, VersionedResource> {
    // The very map taken last time (the translator hands it on when none of its resources changed).
    if (before !== undefined && input === taken) return before;
    const d = derivationOf(input);
    const names = before && d && d.base === taken && [...d.names].every((n) => before.has(n) && input.has(n)) ? d.names : undefined;
    if (names && before) return this.derivedUpdate(before, input, names, swaps, changed);
    const out = input instanceof ArrayMap ? this.positionalUpdate(before, taken, input as ArrayMap<EncodedResource>, changed) : this.wholeUpdate(before, input, changed);
    if (before !== undefined && out !== before) addRemoved(before, input, changed);
    return out;
  }

  /**
   * Only `names` compared; when one of them changed, the previous map with theirs replaced as a
   * positional copy (withValues: at 1,000 resources a copied Map is ~100 KB of garbage per write).
   */
  private derivedUpdate(
    before: ReadonlyMap<string, VersionedResource>,
    input: ReadonlyMap<string, EncodedResource>,
    names: ReadonlySet<string>,
    swaps: [VersionedResource, VersionedResource][],
    changed: Set<string>,
  ): ReadonlyMap<string, VersionedResource> {
    const changes: [string, VersionedResource][] = [];
    for (const name of names) {
      const r = input.get(name);
      const old = before.get(name);
      if (r === undefined || old === undefined || old.hash === r.hash) continue;
      const v = this.version(r);
      changes.push([name, v]);
      swaps.push([old, v]);
      changed.add(name);
    }
    // Unchanged: the previous map itself, which tells update() this type's snapshot can be carried.
    return changes.length === 0 ? before : withValues(before, changes);
  }

  private wholeUpdate(
    before: ReadonlyMap<string, VersionedResource> | undefined,
    input: ReadonlyMap<string, EncodedResource>,
    changed: Set<string>,
  ): ReadonlyMap<string, VersionedResource> {
    const out = new Map<string, VersionedResource>();
    let differs = before === undefined || before.size !== input.size;
    for (const [name, r] of input) {
      const old = before?.get(name);
      const v = this.versionedAs(old, r);
      out.set(name, v);
      if (v !== old) {
        differs = true;
        changed.add(name);
      }
    }
    return differs || before === undefined ? out : before;
  }

  /**
   * wholeUpdate of a positional input (the translator's after a cluster was created or deleted):
   * the versioned map shares its key list and index, so no Map of every name is built again.
   * When the translator tells where each resource came from (positionalOf) and the previous
   * versioned map is positional over the same keys as the map taken last time, a resource that
   * is the one taken at its old position keeps its versioned form by position: no lookup, and
   * neither object read.
   */
  private positionalUpdate(
    before: ReadonlyMap<string, VersionedResource> | undefined,
    taken: ReadonlyMap<string, EncodedResource> | undefined,
    input: ArrayMap<EncodedResource>,
    changed: Set<string>,
  ): ReadonlyMap<string, VersionedResource> {
    const keys = input.keyList;
    const resources = input.valueList;
    const d = positionalOf(input);
    const carried = d !== undefined && d.base === taken && taken instanceof ArrayMap && before instanceof ArrayMap && before.keyList === taken.keyList
      ? { from: d.from, taken: (taken as ArrayMap<EncodedResource>).valueList, versioned: (before as ArrayMap<VersionedResource>).valueList }
      : undefined;
    const out = new Array<VersionedResource>(keys.length);
    let differs = before === undefined || before.size !== keys.length;
    for (let i = 0; i < keys.length; i++) {
      const r = resources[i] as EncodedResource;
      const k = carried === undefined ? -1 : (carried.from[i] as number);
      if (k >= 0 && carried?.taken[k] === r) {
        out[i] = carried.versioned[k] as VersionedResource;
        continue;
      }
      const old = before?.get(keys[i] as string);
      out[i] = this.versionedAs(old, r);
      if (out[i] !== old) {
        differs = true;
        changed.add(keys[i] as string);
      }
    }
    return differs || before === undefined ? new ArrayMap(keys, input.index, out) : before;
  }

  /**
   * The snapshot for a proxy's node.cluster: its group's, or the default one; in the client's
   * form when the cache has that form of the group (gRPC's is published once a gRPC client
   * connected: until then gRPC clients get Envoy's).
   */
  snapshotFor(nodeCluster: string, form: ClientForm = 'envoy'): Snapshot {
    const group = this.snapshots.has(nodeCluster) ? nodeCluster : DEFAULT_GROUP;
    const inForm = form === 'envoy' ? undefined : this.snapshots.get(formGroupKey(group, form));
    return inForm ?? this.snapshots.get(group) ?? new Snapshot(DEFAULT_GROUP, 0, new Map());
  }

  /** Whether `group` has a snapshot of its own (otherwise its proxies see the default group's). */
  hasGroup(group: string): boolean {
    return this.snapshots.has(group);
  }

  subscribe(listener: CacheListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The resource's previous versioned form when it has the same content, else a new one. */
  private versionedAs(old: VersionedResource | undefined, r: EncodedResource): VersionedResource {
    return old !== undefined && old.hash === r.hash ? old : this.version(r);
  }

  private version(r: EncodedResource): VersionedResource {
    const version = r.hash;
    return { ...r, version, versionWords: versionWords(version) };
  }
}
