import type { Etcd3, Lease } from 'etcd3';
import type { Logger } from 'pino';
import { PrefixWatch } from '../catalog/store/etcd-prefix-watch.js';
import { KeepAliveCredit } from './keep-alive-credit.js';
import { nameUnder, type HaKeys } from './keys.js';
import { monotonicNow } from '../runtime/monotonic-clock.js';

export interface MembershipOptions {
  readonly client: Etcd3;
  readonly keys: HaKeys;
  readonly replicaId: string;
  /** The lease TTL in whole seconds (etcd's unit): a dead replica's clusters move after it. */
  readonly ttlSeconds: number;
  readonly log: Logger;
  /** Called when the live set, the lease or the fenced state changes. */
  readonly onChange: () => void;
  readonly now?: () => number;
}

/** How often the fence deadline is checked, and the lease re-granted after a loss. */
const CHECK_MS = 200;
const REGRANT_MS = 500;

/**
 * This replica's registration under an etcd lease, and the list of live replicas.
 *
 * Fencing: the replica counts itself fenced from the moment its lease could have expired at etcd
 * without its knowing, i.e. when no keep-alive succeeded for two thirds of the TTL (keep-alives go
 * out every third). A fenced replica must stop acting as an owner at once, before etcd lets
 * another replica take over. When the lease is lost for good, a new one is granted as soon as
 * etcd answers again and the replica registers anew. A keep-alive counts from when it was sent,
 * the last time etcd can have renewed the lease by it (keep-alive-credit.ts).
 */
export class Membership {
  private lease: Lease | undefined;
  private leaseId: string | undefined;
  private lastKeepAlive = -Infinity;
  private readonly members = new Set<string>();
  private watch: PrefixWatch | undefined;
  /** Whether the member list was read since start: later listings follow a lost watch. */
  private listedOnce = false;
  private timer: NodeJS.Timeout | undefined;
  private wasFenced = true;
  private stopped = false;
  private granting: Promise<void> | undefined;

  constructor(private readonly o: MembershipOptions) {}

  async start(): Promise<void> {
    this.stopped = false;
    this.listedOnce = false;
    await this.register();
    await this.watchMembers();
    this.timer = setInterval(() => this.check(), CHECK_MS);
    this.timer.unref();
  }

  /** Revokes the lease: this replica's keys (registration, owner keys) go at once, a clean hand-over. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    this.timer = undefined;
    await this.watch?.stop();
    this.watch = undefined;
    const lease = this.lease;
    this.lease = undefined;
    this.leaseId = undefined;
    await lease?.revoke().catch((err: unknown) => this.o.log.warn({ err }, 'ha: lease revoke failed; it expires after its TTL'));
  }

  /** The replicas registered now (this one included while its lease lives). */
  live(): ReadonlySet<string> {
    return this.members;
  }

  /** The lease to put owned keys under, while it is alive and not fenced. */
  currentLease(): string | undefined {
    return this.fenced() ? undefined : this.leaseId;
  }

  fenced(): boolean {
    return this.leaseId === undefined || this.now() - this.lastKeepAlive > (this.o.ttlSeconds * 1000 * 2) / 3;
  }

  /** Monotonic: with the wall clock, a step back (NTP, a VM resumed) kept a cut-off replica unfenced, ticking, for as long as the step. */
  private now(): number {
    return (this.o.now ?? monotonicNow)();
  }

  private check(): void {
    const fenced = this.fenced();
    if (fenced !== this.wasFenced) {
      this.wasFenced = fenced;
      this.o.log[fenced ? 'warn' : 'info']({ replica: this.o.replicaId }, fenced ? 'ha: fenced (no etcd keep-alive): stopped owning clusters' : 'ha: lease alive again');
      this.o.onChange();
    }
    if (this.leaseId === undefined && !this.stopped) void this.regrant();
  }

  private regrant(): Promise<void> {
    this.granting ??= this.register()
      .catch((err: unknown) => {
        this.o.log.warn({ err: (err as Error).message }, 'ha: cannot register in etcd yet');
        return new Promise<void>((resolve) => setTimeout(resolve, REGRANT_MS).unref());
      })
      .finally(() => {
        this.granting = undefined;
      });
    return this.granting;
  }

  /** Grants a lease and puts this replica's key under it. */
  private async register(): Promise<void> {
    // The lease is granted, and its TTL starts, no earlier than the grant is sent (at construction).
    const asked = this.now();
    const lease = this.o.client.lease(this.o.ttlSeconds, { autoKeepAlive: true });
    lease.on('lost', (err) => this.onLost(lease, err));
    const credit = new KeepAliveCredit();
    lease.on('keepaliveEstablished', () => credit.restart());
    lease.on('keepaliveFired', () => credit.fired(this.now()));
    lease.on('keepaliveSucceeded', () => {
      const sent = credit.answered();
      if (this.lease === lease && sent !== undefined) this.lastKeepAlive = Math.max(this.lastKeepAlive, sent);
    });
    try {
      const id = await lease.grant();
      await this.o.client.put(this.o.keys.replica(this.o.replicaId)).value(JSON.stringify({ id: this.o.replicaId, since: this.now() })).lease(id).exec();
      if (this.stopped) {
        await lease.revoke();
        return;
      }
      this.lease = lease;
      this.leaseId = id;
      this.lastKeepAlive = asked;
    } catch (err) {
      lease.release();
      throw err;
    }
    this.o.log.info({ replica: this.o.replicaId, lease: this.leaseId, ttlSeconds: this.o.ttlSeconds }, 'ha: registered');
    this.check();
  }

  private onLost(lease: Lease, err: Error): void {
    if (this.lease !== lease) return;
    this.o.log.warn({ err: err.message }, 'ha: etcd lease lost');
    this.lease = undefined;
    this.leaseId = undefined;
    this.check();
  }

  private async watchMembers(): Promise<void> {
    const dir = this.o.keys.replicas;
    this.watch = new PrefixWatch({
      client: this.o.client,
      prefix: dir,
      listed: (kvs) => this.listed(kvs.map((kv) => nameUnder(dir, kv.key.toString()))),
      put: (kv) => this.member(nameUnder(dir, kv.key.toString()), true),
      deleted: (kv) => this.member(nameUnder(dir, kv.key.toString()), false),
      log: this.o.log,
      what: 'ha: member watch',
    });
    await this.watch.start();
  }

  /** The members as listed (at start, and after a lost watch: who came and went meanwhile). */
  private listed(ids: readonly (string | undefined)[]): void {
    const now = new Set(ids.filter((id): id is string => id !== undefined));
    const first = !this.listedOnce;
    this.listedOnce = true;
    if (first) {
      this.members.clear();
      for (const id of now) this.members.add(id);
    } else {
      for (const id of [...this.members]) if (!now.has(id)) this.member(id, false);
      for (const id of now) this.member(id, true);
    }
    this.o.onChange();
  }

  private member(id: string | undefined, alive: boolean): void {
    if (id === undefined || this.members.has(id) === alive) return;
    if (alive) this.members.add(id);
    else this.members.delete(id);
    this.o.log.info({ replica: id, alive, live: [...this.members] }, 'ha: membership changed');
    this.o.onChange();
  }
}
