import type { Etcd3, IKeyValue, Lease } from 'etcd3';
import type { Logger } from 'pino';
import { PrefixWatch } from '../catalog/store/etcd-prefix-watch.js';
import type { Component } from '../runtime/lifecycle.js';

/**
 * The fleet's proxy status when several replicas serve xDS: each replica shares the status of the
 * proxies connected to it under one etcd key held by its lease (gone within the TTL when the
 * replica dies), and watches the others' keys, so /v1/proxies on any replica lists every proxy
 * with the replica it is connected to. Soft state: a replica cut off from etcd keeps its last
 * view of the others and retries.
 */

/** One proxy stream's status as a replica shares it (the admin API's proxy view, JSON). */
export type SharedProxy = Readonly<Record<string, unknown>> & { readonly nodeId: string };

/** What one replica stores under `<prefix>ha/proxies/<replica>`. */
export interface ReplicaProxies {
  readonly replica: string;
  /** When this replica last wrote it (ISO time). */
  readonly at: string;
  /** How many streams the replica has; `proxies` holds at most `maxProxies` of them. */
  readonly total: number;
  readonly proxies: readonly SharedProxy[];
}

export interface FleetProxiesOptions {
  readonly client: Etcd3;
  /** The key prefix of this fulcrum fleet (the store's); keys go under `<prefix>ha/proxies/`. */
  readonly prefix: string;
  readonly replica: string;
  /**
   * How many proxies this replica has; of at most `max` of them, in the order to share them, their
   * shape (which streams, in which sync states: a share is due at once when it moves) and their views.
   */
  readonly local: (max: number) => LocalProxies;
  /**
   * Moves whenever this replica's proxies change (ProxyRegistry.version): while it stands nothing
   * is built. Building and comparing the status every second took ~90 ms at 10,000 streams.
   */
  readonly version?: () => number;
  readonly log: Logger;
  /** How often the status is written when its shape changed: at most one etcd write per interval. */
  readonly intervalMs?: number;
  /**
   * How often it is written when only versions, times or counters changed (every push moves them):
   * a fleet whose weights move every second would otherwise rewrite every replica's status every
   * second, ~1 MB each at 1,000 proxies, all kept in etcd's history until it is compacted.
   */
  readonly refreshMs?: number;
  readonly leaseTtlSeconds?: number;
  /** At most this many proxies are listed. */
  readonly maxProxies?: number;
  /**
   * At most this many bytes of them (their JSON, UTF-8): etcd refuses a request over 1.5 MiB by
   * default, and 2,000 Envoys' views are ~2.2 MB (with node metadata up to 1 KiB each shared:
   * admin/views.ts SHARED_METADATA_BYTES).
   */
  readonly maxBytes?: number;
  readonly clock?: () => number;
}

export interface LocalProxies {
  readonly total: number;
  /** Stream → its types' state codes (one character each; IN_FLIGHT matches whatever was written). */
  readonly shape: ReadonlyMap<string, string>;
  readonly proxies: () => readonly SharedProxy[];
}

/** The code of a type whose response is in flight (sent moments ago): it will read as before or as SYNCED, no news either way. */
export const IN_FLIGHT = '~';

/** Whether `now` shows the same streams as `written`, each type in the same state or in flight. */
export function sameShape(written: ReadonlyMap<string, string>, now: ReadonlyMap<string, string>): boolean {
  if (written.size !== now.size) return false;
  for (const [stream, codes] of now) {
    const before = written.get(stream);
    if (before === undefined || before.length !== codes.length) return false;
    if (before === codes) continue;
    for (let i = 0; i < codes.length; i++) if (codes[i] !== IN_FLIGHT && codes[i] !== before[i]) return false;
  }
  return true;
}

const DEFAULT_MAX_BYTES = 1024 * 1024;

/**
 * The JSON array of `proxies`, in order, as many as fit in `maxBytes` (UTF-8): one that does not
 * fit is left out and the next ones are tried (one huge view must not hide all the others).
 */
export function listWithin(proxies: readonly SharedProxy[], maxBytes: number): string {
  const parts: string[] = [];
  let bytes = 2;
  for (const p of proxies) {
    const text = JSON.stringify(p);
    const size = Buffer.byteLength(text) + (parts.length > 0 ? 1 : 0);
    if (bytes + size > maxBytes) continue;
    parts.push(text);
    bytes += size;
  }
  return `[${parts.join(',')}]`;
}

/** What JSON.stringify gives a ReplicaProxies, its proxies already serialized as `listed`. */
function replicaProxiesText(replica: string, at: string, total: number, listed: string): string {
  return `{"replica":${JSON.stringify(replica)},"at":${JSON.stringify(at)},"total":${total},"proxies":${listed}}`;
}

export class FleetProxies implements Component {
  readonly name = 'fleet-proxies';
  private readonly key: string;
  private readonly others = new Map<string, ReplicaProxies>();
  private lease: Lease | undefined;
  private watch: PrefixWatch | undefined;
  private timer: NodeJS.Timeout | undefined;
  private written = '';
  /** `version` when `written` was last built, and the lease it was written under (the key lives as long). */
  private writtenVersion: number | undefined;
  private writtenUnder: Lease | undefined;
  /** The total and shape last written, and when. */
  private writtenShape: ReadonlyMap<string, string> = new Map();
  private writtenTotal = -1;
  private writtenAt = 0;
  private writing = false;
  private failing = false;
  private stopped = false;

  constructor(private readonly options: FleetProxiesOptions) {
    this.key = `${this.dir}${options.replica}`;
  }

  private get dir(): string {
    return `${this.options.prefix}ha/proxies/`;
  }

  start(): void {
    // Not awaited: a replica starts (and serves its Envoys) while etcd is away; the watch
    // connects and the first write lands when etcd answers.
    this.follow();
    this.timer = setInterval(() => void this.share(), this.options.intervalMs ?? 1_000);
    void this.share();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    const { watch, lease } = this;
    this.watch = undefined;
    this.lease = undefined;
    // Revoking drops this replica's key at once instead of after the TTL. Bounded: with etcd
    // away, stopping must not hang (the lease then expires by itself).
    await Promise.race([
      Promise.all([watch?.stop(), lease?.revoke()]).catch(() => undefined),
      new Promise((resolve) => setTimeout(resolve, 2_000).unref()),
    ]);
  }

  /** Proxies connected to the other replicas, each with the replica it is connected to. */
  remote(): (SharedProxy & { readonly replica: string })[] {
    return [...this.others.values()].flatMap((r) => r.proxies.map((p) => ({ ...p, replica: r.replica })));
  }

  /** The other replicas that share their proxies, with how many each has. */
  replicas(): { replica: string; at: string; total: number }[] {
    return [...this.others.values()].map(({ replica, at, total }) => ({ replica, at, total }));
  }

  /**
   * Writes this replica's status if it changed since the last successful write: at once (next
   * interval) when its shape or total did, after `refreshMs` when only details did.
   */
  async share(): Promise<void> {
    if (this.writing || this.stopped) return;
    const version = this.options.version?.();
    // Nothing changed, and the key written holds under the lease it was written with.
    const kept = this.lease !== undefined && this.lease === this.writtenUnder && !this.lease.revoked();
    if (kept && version !== undefined && version === this.writtenVersion) return;
    const max = this.options.maxProxies ?? 2_000;
    const local = this.options.local(max);
    const now = (this.options.clock ?? Date.now)();
    const details = kept && local.total === this.writtenTotal && sameShape(this.writtenShape, local.shape);
    if (details && now - this.writtenAt < (this.options.refreshMs ?? 10_000)) return;
    // The proxies serialized once: compared with the last write, and the value's part.
    const listed = listWithin(local.proxies().slice(0, max), this.options.maxBytes ?? DEFAULT_MAX_BYTES);
    const content = `${local.total} ${listed}`;
    if (kept && content === this.written) {
      this.writtenVersion = version;
      return;
    }
    this.writing = true;
    try {
      const lease = this.currentLease();
      await lease.put(this.key).value(replicaProxiesText(this.options.replica, new Date(now).toISOString(), local.total, listed));
      this.written = content;
      this.writtenVersion = version;
      this.writtenShape = local.shape;
      this.writtenTotal = local.total;
      this.writtenAt = now;
      this.writtenUnder = lease;
      if (this.failing) this.options.log.info('proxy status shared through etcd again');
      this.failing = false;
    } catch (err) {
      if (!this.failing) this.options.log.warn({ err }, 'cannot share proxy status through etcd; retrying');
      this.failing = true;
    } finally {
      this.writing = false;
    }
  }

  private currentLease(): Lease {
    if (this.lease && !this.lease.revoked()) return this.lease;
    const lease = this.options.client.lease(this.options.leaseTtlSeconds ?? 10);
    lease.on('lost', () => {
      // Our key went with the lease: a fresh lease and a write on the next interval.
      if (this.lease === lease) this.lease = undefined;
      this.written = '';
    });
    this.lease = lease;
    return lease;
  }

  private follow(): void {
    const watch = new PrefixWatch({
      client: this.options.client,
      prefix: this.dir,
      // At start, and after a lost watch (replicas gone meanwhile are forgotten).
      listed: (kvs) => {
        this.others.clear();
        for (const kv of kvs) this.heard(kv);
      },
      put: (kv) => this.heard(kv),
      deleted: (kv) => this.others.delete(kv.key.toString().slice(this.dir.length)),
      log: this.options.log,
      what: 'fleet proxy status watch',
    });
    this.watch = watch;
    // A replica serves while etcd is away: the first listing retries until etcd answers.
    watch.startRetrying();
  }

  private heard(kv: IKeyValue): void {
    const replica = kv.key.toString().slice(this.dir.length);
    if (replica === this.options.replica) return;
    const parsed = parseReplicaProxies(kv.value.toString());
    if (parsed) this.others.set(replica, { ...parsed, replica });
    else this.options.log.warn({ key: kv.key.toString() }, 'ignoring a malformed proxy status in etcd');
  }
}

/** Reads another replica's value; undefined when it is not what a replica writes. */
export function parseReplicaProxies(text: string): ReplicaProxies | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const { replica, at, total, proxies } = value as Record<string, unknown>;
  if (typeof replica !== 'string' || typeof at !== 'string' || typeof total !== 'number' || !Array.isArray(proxies)) return undefined;
  const valid = proxies.filter((p): p is SharedProxy => typeof p === 'object' && p !== null && typeof (p as { nodeId?: unknown }).nodeId === 'string');
  return valid.length === proxies.length ? { replica, at, total, proxies: valid } : undefined;
}
