import type { Etcd3, IKeyValue } from 'etcd3';
import type { Logger } from 'pino';
import { PrefixWatch } from '../catalog/store/etcd-prefix-watch.js';
import { nameUnder, type HaKeys } from './keys.js';
import { rendezvousOwner } from './rendezvous.js';

/** What ownership needs of membership (membership.ts). */
export interface Members {
  live(): ReadonlySet<string>;
  currentLease(): string | undefined;
  fenced(): boolean;
}

export interface OwnershipHooks {
  /** Just acquired: load the last owner's state before the first tick (ticking starts after it resolves). */
  acquired(cluster: string, ownerRevision: string): Promise<void>;
  /**
   * About to hand the cluster over (ticking already stopped): write the final state, or, when the
   * cluster left the catalog (`gone`), remove what was published for it.
   */
  releasing(cluster: string, ownerRevision: string, gone: boolean): Promise<void>;
}

export interface OwnershipOptions {
  readonly client: Etcd3;
  readonly keys: HaKeys;
  readonly replicaId: string;
  readonly members: Members;
  readonly hooks: OwnershipHooks;
  readonly log: Logger;
}

interface Holder {
  readonly replica: string;
  /** The lease the key lives under: a restarted replica (same id) must not adopt its old self's keys. */
  readonly lease: string;
  /** create_revision of the owner key: fences the owner's writes (see WeightShare). */
  readonly revision: string;
}

/**
 * One owner per cluster. The intended owner is the rendezvous choice over the live replicas; it
 * becomes the owner only by creating `<prefix>/ha/owners/<cluster>` under its lease in a transaction
 * that requires the key to be absent (create_revision == 0), so two replicas never both hold a
 * cluster even while their member lists disagree. A replica that stops being the intended owner
 * (a replica joined) stops ticking, writes its final state and deletes the key; one that dies
 * loses the key with its lease. A fenced replica owns nothing until its lease is alive again.
 */
export class Ownership {
  private clusters: readonly string[] = [];
  /** Clusters this replica ticks: acquired and their state imported. */
  private readonly mine = new Map<string, string>();
  private readonly holders = new Map<string, Holder>();
  /**
   * The owner key revision whose acquired hook (the state import) completed, per cluster: a key
   * of ours is ticked again without a new import only after a fence, not after a failed import.
   */
  private readonly imported = new Map<string, string>();
  private readonly busy = new Set<string>();
  private watch: PrefixWatch | undefined;
  private started = false;
  private stopping = false;
  private running: Promise<void> | undefined;
  private again = false;

  constructor(private readonly o: OwnershipOptions) {}

  async start(): Promise<void> {
    const dir = this.o.keys.owners;
    const held = (kv: IKeyValue): void => this.held(nameUnder(dir, kv.key.toString()), kv.value.toString(), kv.create_revision, kv.lease);
    this.watch = new PrefixWatch({
      client: this.o.client,
      prefix: dir,
      // At start nothing is known; after a lost watch, owner keys gone meanwhile are lost too.
      listed: (kvs) => {
        const present = new Set(kvs.map((kv) => nameUnder(dir, kv.key.toString())));
        for (const cluster of [...this.holders.keys()]) if (!present.has(cluster)) this.lost(cluster);
        for (const kv of kvs) held(kv);
        if (this.started) this.reconcile();
      },
      put: (kv) => {
        held(kv);
        this.reconcile();
      },
      deleted: (kv) => {
        const cluster = nameUnder(dir, kv.key.toString());
        if (cluster !== undefined) this.lost(cluster);
        this.reconcile();
      },
      log: this.o.log,
      what: 'ha: owner watch',
    });
    await this.watch.start();
    this.started = true;
  }

  /** Hands every owned cluster over (final state written, key deleted), then stops watching. */
  async stop(): Promise<void> {
    // No pass from now on: one run with the clusters cleared took every owned cluster for one
    // that left the catalog, and retired it (records deleted) instead of handing it over.
    this.stopping = true;
    await this.settle();
    await Promise.all([...this.mine.keys()].map((c) => this.release(c)));
    await this.watch?.stop();
    this.watch = undefined;
    this.started = false;
    this.stopping = false;
  }

  setClusters(names: readonly string[]): void {
    this.clusters = names;
    this.reconcile();
  }

  /** Whether this replica ticks the cluster now. */
  owns(cluster: string): boolean {
    return this.mine.has(cluster) && !this.o.members.fenced();
  }

  /** The owner key's create_revision while this replica owns the cluster (the fence of its writes). */
  revision(cluster: string): string | undefined {
    return this.owns(cluster) ? this.mine.get(cluster) : undefined;
  }

  owned(): string[] {
    return [...this.mine.keys()].filter((c) => this.owns(c));
  }

  /** Who holds each cluster, as this replica last saw it. */
  holderOf(cluster: string): string | undefined {
    return this.holders.get(cluster)?.replica;
  }

  /** Runs a reconciliation now, or once more after the running one. */
  reconcile(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.pass()
      .catch((err: unknown) => this.o.log.warn({ err: (err as Error).message }, 'ha: ownership pass failed'))
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.reconcile();
        }
      });
  }

  /** Resolves when no reconciliation is running. */
  async settle(): Promise<void> {
    while (this.running) await this.running;
  }

  /** The owner key is gone (released, or our lease expired): if it was ours, stop ticking. */
  private lost(cluster: string): void {
    this.holders.delete(cluster);
    this.imported.delete(cluster);
    if (this.mine.delete(cluster)) this.o.log.warn({ cluster }, 'ha: owner key gone: no longer ticking the cluster');
  }

  private held(cluster: string | undefined, replica: string, revision: string, lease: string): void {
    if (cluster !== undefined) this.holders.set(cluster, { replica, revision, lease });
  }

  private async pass(): Promise<void> {
    if (this.stopping) return;
    const me = this.o.replicaId;
    const lease = this.o.members.currentLease();
    if (lease === undefined) {
      // Fenced: owns() is already false; forget the claims, they are re-adopted if the lease survived.
      this.mine.clear();
      return;
    }
    const wanted = new Set(this.clusters);
    const live = this.o.members.live();
    // Not in the member list yet (just registered, the list not loaded): decide nothing on a partial view.
    if (!live.has(me)) return;
    const work: Promise<void>[] = [];
    for (const c of this.clusters) {
      if (this.busy.has(c)) continue;
      const intended = rendezvousOwner(c, live) === me;
      const holder = this.holders.get(c);
      const ours = holder?.replica === me && holder.lease === lease;
      if (intended && !this.mine.has(c)) {
        if (ours && this.imported.get(c) === holder.revision) this.mine.set(c, holder.revision); // ours all along (fenced for a while)
        else if (ours) work.push(this.guarded(c, () => this.continueFrom(c, holder.revision))); // its import failed: again
        else if (holder === undefined) work.push(this.guarded(c, () => this.acquire(c, lease)));
        // Held by another replica, or by this one's previous process (same id, older lease): wait for its release or expiry.
      } else if (!intended && (this.mine.has(c) || ours)) {
        work.push(this.guarded(c, () => this.release(c)));
      }
    }
    // Gone from the catalog: what this replica ticks, and owner keys of its lease it no longer
    // ticks (the cluster left while it was fenced): kept, they outlived the cluster.
    for (const [c, h] of this.holders) {
      const held = this.mine.has(c) || (h.replica === me && h.lease === lease);
      if (held && !wanted.has(c) && !this.busy.has(c)) work.push(this.guarded(c, () => this.release(c, true)));
    }
    await Promise.all(work);
  }

  private async guarded(cluster: string, fn: () => Promise<void>): Promise<void> {
    this.busy.add(cluster);
    try {
      await fn();
    } catch (err) {
      this.o.log.warn({ cluster, err: (err as Error).message }, 'ha: ownership change failed; retried on the next pass');
    } finally {
      this.busy.delete(cluster);
    }
  }

  private async acquire(cluster: string, lease: string): Promise<void> {
    const key = this.o.keys.owner(cluster);
    const res = await this.o.client
      .if(key, 'Create', '==', 0)
      .then(this.o.client.put(key).value(this.o.replicaId).lease(lease))
      .commit();
    if (!res.succeeded) return; // someone else holds it; the watch says who
    const revision = res.header.revision;
    this.held(cluster, this.o.replicaId, revision, lease);
    await this.continueFrom(cluster, revision);
  }

  /** Imports the last owner's state (the hook), then ticks the cluster; a failed import owns nothing yet. */
  private async continueFrom(cluster: string, revision: string): Promise<void> {
    await this.o.hooks.acquired(cluster, revision);
    // The key may have gone during the hook (this replica's lease expired): then it owns nothing.
    if (this.holders.get(cluster)?.revision !== revision) return;
    this.imported.set(cluster, revision);
    this.mine.set(cluster, revision);
    this.o.log.info({ cluster, replica: this.o.replicaId }, 'ha: owner of cluster');
  }

  private async release(cluster: string, gone = false): Promise<void> {
    const revision = this.mine.get(cluster) ?? this.holders.get(cluster)?.revision;
    this.mine.delete(cluster);
    if (revision === undefined) return;
    await this.o.hooks.releasing(cluster, revision, gone);
    const key = this.o.keys.owner(cluster);
    await this.o.client.if(key, 'Create', '==', revision).then(this.o.client.delete().key(key)).commit();
    // The key of that revision is gone now (deleted here, or by the hook's retire), not only once
    // the watch says so: a pass meanwhile must not release it again.
    if (this.holders.get(cluster)?.revision === revision) this.lost(cluster);
    this.o.log.info({ cluster, replica: this.o.replicaId }, 'ha: handed cluster over');
  }
}
