import { createHash } from 'node:crypto';
import protobuf from 'protobufjs';
import { PUSH_ORDER, type XdsTypeUrl } from './envoy-api.js';
import type { EncodedResource } from './resource.js';
import { DEFAULT_GROUP, type ResourceSet } from './translator.js';

/** A resource with the version streams announce; shared by every snapshot that holds it unchanged. */
export interface VersionedResource extends EncodedResource {
  readonly version: string;
  /** The Delta envelope (`envoy.service.discovery.v3.Resource`), encoded once. */
  readonly deltaBytes: Uint8Array;
}

/** What a SotW response carries before the per-stream nonce is appended. */
export interface SotwBody {
  readonly version: string;
  readonly bytes: Uint8Array;
  readonly names: readonly string[];
  readonly resources: readonly VersionedResource[];
}

const BODY_MEMO_LIMIT = 64;

export class Snapshot {
  private readonly bodies = new Map<string, SotwBody>();

  constructor(
    readonly group: string,
    readonly seq: number,
    private readonly byType: ReadonlyMap<XdsTypeUrl, ReadonlyMap<string, VersionedResource>>,
    private readonly versionPrefix: string,
  ) {}

  resources(type: XdsTypeUrl): ReadonlyMap<string, VersionedResource> {
    return this.byType.get(type) ?? new Map();
  }

  /**
   * The encoded SotW response body (version_info, resources, type_url) for a set of names, or for
   * all resources of the type. Memoized: the thousands of proxies that ask for the same set share
   * one buffer, and only the nonce is written per stream.
   */
  sotwBody(type: XdsTypeUrl, names: readonly string[] | 'all'): SotwBody {
    const pool = this.resources(type);
    const selected = names === 'all' ? [...pool.keys()].sort() : [...new Set(names)].filter((n) => pool.has(n)).sort();
    const key = `${type}\n${selected.join('\n')}`;
    const memo = this.bodies.get(key);
    if (memo) return memo;
    const body = buildSotwBody(this.versionPrefix, type, selected.map((n) => pool.get(n) as VersionedResource));
    if (this.bodies.size >= BODY_MEMO_LIMIT) this.bodies.clear();
    this.bodies.set(key, body);
    return body;
  }
}

/** Encodes version_info, resources and type_url; the version is a hash of the names and versions carried. */
export function buildSotwBody(prefix: string, type: XdsTypeUrl, resources: readonly VersionedResource[]): SotwBody {
  const hash = createHash('sha256');
  for (const r of resources) hash.update(r.name).update('\0').update(r.version).update('\0');
  const version = `${prefix}.${hash.digest('base64url').slice(0, 16)}`;
  const w = protobuf.Writer.create().uint32(10).string(version);
  for (const r of resources) w.uint32(18).bytes(r.anyBytes);
  w.uint32(34).string(type);
  return { version, bytes: w.finish(), names: resources.map((r) => r.name), resources };
}

export type CacheListener = (changedGroups: ReadonlySet<string>) => void;

/**
 * Versioned resources per node group. Versions are the content hash behind a prefix unique to this
 * process start, so a restarted control plane never reuses a version for something else.
 */
export class XdsCache {
  private snapshots = new Map<string, Snapshot>();
  private readonly listeners = new Set<CacheListener>();
  private seq = 0;

  constructor(readonly versionPrefix: string) {
    this.snapshots.set(DEFAULT_GROUP, new Snapshot(DEFAULT_GROUP, 0, new Map(), versionPrefix));
  }

  /** Replaces every group's resources; listeners hear only about groups whose content changed. */
  update(groups: ReadonlyMap<string, ResourceSet>): ReadonlySet<string> {
    const changed = new Set<string>();
    const next = new Map<string, Snapshot>();
    for (const [group, set] of groups) {
      const prev = this.snapshots.get(group);
      const byType = new Map<XdsTypeUrl, Map<string, VersionedResource>>();
      let differs = !prev;
      for (const type of PUSH_ORDER) {
        const out = new Map<string, VersionedResource>();
        const before = prev?.resources(type);
        for (const [name, r] of set.get(type) ?? []) {
          const old = before?.get(name);
          out.set(name, old && old.hash === r.hash ? old : this.version(r));
          if (!old || old.hash !== r.hash) differs = true;
        }
        if (before && before.size !== out.size) differs = true;
        byType.set(type, out);
      }
      if (differs) {
        changed.add(group);
        next.set(group, new Snapshot(group, ++this.seq, byType, this.versionPrefix));
      } else if (prev) {
        next.set(group, prev);
      }
    }
    for (const group of this.snapshots.keys()) if (!next.has(group)) changed.add(group);
    this.snapshots = next;
    if (changed.size > 0) for (const l of this.listeners) l(changed);
    return changed;
  }

  /** The snapshot for a proxy's node.cluster: its group's, or the default one. */
  snapshotFor(nodeCluster: string): Snapshot {
    return this.snapshots.get(nodeCluster) ?? this.snapshots.get(DEFAULT_GROUP) ?? new Snapshot(DEFAULT_GROUP, 0, new Map(), this.versionPrefix);
  }

  subscribe(listener: CacheListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private version(r: EncodedResource): VersionedResource {
    const version = `${this.versionPrefix}.${r.hash}`;
    const deltaBytes = protobuf.Writer.create()
      .uint32(10).string(version)
      .uint32(18).bytes(r.anyBytes)
      .uint32(26).string(r.name)
      .finish();
    return { ...r, version, deltaBytes };
  }
}
