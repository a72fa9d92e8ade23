/** Shapes the store reads and writes: domain types plus ownership, operator state and revisions. */
import type { Cluster, Endpoint, Listener, NodeGroup } from '../types.js';

/** Which source a resource came from, and so which source may change it. */
export type Owner = 'file' | 'api' | 'kubernetes';
/** The writers `put*`/`delete*` accept; 'file' rows are written only by `seedFromConfig`. */
export type Writer = Exclude<Owner, 'file'>;

/**
 * Operator intent on one endpoint, layered over its declared health:
 * - `active`: served as declared;
 * - `draining`: served with health DRAINING (Envoy stops new requests to it, existing ones finish);
 * - `disabled`: left out of the catalog entirely (see `Store.catalog`).
 */
export const OPERATOR_STATES = ['active', 'draining', 'disabled'] as const;
export type OperatorState = (typeof OPERATOR_STATES)[number];

/** `override`: an operator override on a discovered cluster or endpoint (override-records.ts). */
export type ResourceKind = 'cluster' | 'endpoint' | 'listener' | 'node-group' | 'override';

/**
 * A cluster's own settings, without its endpoints. Stored as JSON, whatever fields the domain
 * type grows (weighting, safety, probe, ...): the store does not interpret them.
 */
export type ClusterSpec = Omit<Cluster, 'endpoints'>;

export interface EndpointSpec extends Endpoint {
  /** Defaults to the endpoint's current state, or 'active' for a new endpoint. */
  readonly state?: OperatorState;
}

/** `putCluster` input. When `endpoints` is given the cluster's endpoint set is replaced by it. */
export type ClusterInput = ClusterSpec & {
  readonly endpoints?: readonly EndpointSpec[];
};

export interface Meta {
  readonly owner: Owner;
  /** Store revision of the last change to this resource: use it as ETag / If-Match. */
  readonly revision: number;
  /** ISO-8601. */
  readonly updatedAt: string;
}

export interface EndpointRecord extends Endpoint, Meta {
  readonly cluster: string;
  readonly state: OperatorState;
}

/** A cluster's revision covers its endpoints: any endpoint change bumps it. */
export type ClusterRecord = ClusterSpec &
  Meta & {
    readonly endpoints: readonly EndpointRecord[];
  };

export interface ListenerRecord extends Listener, Meta {}

export interface NodeGroupRecord extends NodeGroup, Meta {}

export interface WriteOptions {
  /** Who did it, for the audit log (user name, token id, "kubernetes", ...). */
  readonly actor: string;
  readonly owner: Writer;
  /**
   * Optimistic concurrency: the revision the caller last read. A mismatch throws ConflictError
   * and writes nothing. `0` means "create only": the resource must not exist yet.
   */
  readonly ifMatch?: number;
  /** `patch`: the write merges a JSON merge patch into the resource; its audit action is then `patch`, not `update`. */
  readonly intent?: WriteIntent;
  /** A rule about other resources the write must keep; honoured by every write that takes these options (store-contract.ts). */
  readonly guard?: WriteGuard;
}

export type WriteIntent = 'patch';

/** What every hand-over's successor says besides the definition. */
interface HandOver {
  /** Whom its audit entry names (the config file's seeds' actor). */
  readonly actor: string;
}

/**
 * The config file's definition of a cluster the API deletes (README: "delete it through the API
 * to hand the name to the file"), written in the delete's own transaction: a delete committed
 * first and the file's seed after left a state without the cluster in between, and proxies sent
 * it dropped the cluster and failed its traffic.
 */
export interface Successor extends HandOver {
  readonly cluster: Cluster;
}

/**
 * The config file's definition of a listener the API deletes, written in the delete's own
 * transaction as a cluster's Successor is: a state without the listener between the delete and the
 * file's seed made proxies drain it and stop accepting on its socket.
 */
export interface ListenerSuccessor extends HandOver {
  readonly listener: Listener;
}

/** A delete's options: with `successor`, the name goes to the file in the same transaction. */
export interface DeleteOptions<S extends HandOver> extends WriteOptions {
  readonly successor?: S;
}

export type DeleteClusterOptions = DeleteOptions<Successor>;
export type DeleteListenerOptions = DeleteOptions<ListenerSuccessor>;

/**
 * A rule about other resources a write must keep (the admin API's: a listener's socket address is
 * free and its routes name existing clusters; a deleted cluster is referenced by nothing; a new
 * endpoint's address is not in its cluster under another spelling). Checked
 * before the write, two concurrent writes (on one replica or two) could both pass it; so the store
 * runs `check` where the write commits: inside SQLite's write transaction, and in etcd each time
 * the write is planned, the transaction then comparing what `reads` names as the plan saw it.
 * `check` reads the store and throws to refuse the write.
 */
export interface WriteGuard {
  readonly check: () => void;
  readonly reads: GuardReads;
}

/** What a guard's check reads: etcd commits the write only if it is unchanged. */
export interface GuardReads {
  /** Clusters whose existence (or absence) the check relied on. */
  readonly clusters?: readonly string[];
  /** Whether it read every listener. */
  readonly listeners?: boolean;
  /** Whether it read every node group. */
  readonly nodeGroups?: boolean;
}

/** Who writes, as a write takes it: an actor, or write options (their actor, intent and guard). */
export type Writing = string | Pick<WriteOptions, 'actor' | 'intent' | 'guard'>;

/** The guard a write runs where it commits (WriteGuard), if any. */
export function guardOf(writing: Writing): WriteGuard | undefined {
  return typeof writing === 'string' ? undefined : writing.guard;
}

/** The audit action of a change made by `writing`: an update made by a merge patch is a `patch`. */
export function auditedAction(action: AuditAction, writing: Writing): AuditAction {
  return action === 'update' && typeof writing !== 'string' && writing.intent === 'patch' ? 'patch' : action;
}

export interface StateOptions {
  readonly actor: string;
  /** Revision of the endpoint (not of its cluster). */
  readonly ifMatch?: number;
}

/** `update`: replaced whole (PUT, the config file); `patch`: changed by a JSON merge patch (PATCH). */
export type AuditAction = 'create' | 'update' | 'patch' | 'delete' | 'set-state';

export interface AuditEntry {
  readonly id: number;
  readonly at: string;
  readonly actor: string;
  readonly action: AuditAction;
  readonly kind: ResourceKind;
  /** Endpoints are named `<cluster>/<address>:<port>`. */
  readonly name: string;
  /** Store revision the change was committed at. */
  readonly revision: number;
  /** The record before the change (null on create) and after it (null on delete). */
  readonly before: unknown;
  readonly after: unknown;
  /** Set when read with `trimOver` and larger: before and after then come without their `endpoints`. */
  readonly trimmed?: AuditTrim;
}

/** What was left out of a large entry (a change to a cluster of thousands of endpoints). */
export interface AuditTrim {
  /** Size of before and after as stored (SQLite: exact; etcd: estimated from the endpoint counts). */
  readonly bytes: number;
  /** Endpoints in before and after (null: no record, or no endpoint list). */
  readonly endpoints: { readonly before: number | null; readonly after: number | null };
}

export interface AuditReadOptions {
  /**
   * Entries whose before and after together exceed this many bytes come back `trimmed`, so that
   * reading a page of the log never parses megabytes of endpoint lists it will not show.
   */
  readonly trimOver?: number;
}

export interface Change {
  readonly kind: ResourceKind;
  readonly name: string;
  readonly action: AuditAction;
}

/** Emitted once per committed transaction that changed something. */
export interface StoreChange {
  readonly revision: number;
  readonly actor: string;
  readonly changes: readonly Change[];
}

export interface WriteResult {
  /** The resource's revision after the call (unchanged when the call was a no-op). */
  readonly revision: number;
}

export interface SeedConflict {
  readonly kind: ResourceKind;
  readonly name: string;
  /** The source that already owns the name (or, with boundBy, the socket); the file's definition was not applied. */
  readonly owner: Owner;
  /** A listener: the other source's listener that already binds its socket (seed-sockets.ts). */
  readonly boundBy?: string;
}

export interface SeedOptions {
  readonly actor: string;
  /**
   * Nothing is served yet (the process's start): a store may write the seed in one go, as
   * slicing it (write-lane.ts) would only lengthen the start (~1.2 s more at 100k endpoints).
   */
  readonly atStart?: boolean;
}

export interface SeedResult {
  /** Store revision after the seed. */
  readonly revision: number;
  readonly changes: readonly Change[];
  readonly conflicts: readonly SeedConflict[];
}
