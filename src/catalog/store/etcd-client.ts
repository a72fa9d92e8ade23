/**
 * The etcd client every part of fulcrum that talks to etcd builds from the config file's
 * `store.etcd` block (the store, weight ownership, shared proxy status), so they all reach the
 * same cluster with the same credentials.
 */
import { readFileSync } from 'node:fs';
import { circuitBreaker, ConsecutiveBreaker, ExponentialBackoff, halfJitterGenerator, handleWhen, isBrokenCircuitError, retry, timeout, TimeoutStrategy, wrap, type IPolicy } from 'cockatiel';
import { Etcd3, GRPCUnavailableError, isRecoverableError, type IOptions } from 'etcd3';
import type { EtcdSettings } from './store-config.js';

export { DEFAULT_ETCD_PREFIX, DEFAULT_STORE_CONFIG, type EtcdSettings, type EtcdTls, type StoreConfig } from './store-config.js';

type ReadFile = (path: string) => Buffer;

const DEFAULT_CALL_TIMEOUT_MS = 3_000;

/** gRPC's words for a call that timed out before it left this process. */
export function neverSent(err: Error): boolean {
  return /DEADLINE_EXCEEDED|deadline exceeded/i.test(err.message) && /waiting for (name resolution|LB pick|connection)/.test(err.message);
}

/** Below the shortest deadline an attempt is given (store.etcd.writeTimeoutMs is at least 100 ms). */
const EXPIRED_AT_START_MS = 50;

/**
 * The call's deadline had passed, or all but passed, when it was made: gRPC gave up at once,
 * before looking for the member. A caller's deadline holds for every attempt (the health probe
 * sets one), so an attempt after it is spent fails so without meeting any member.
 */
export function expiredAtStart(err: Error): boolean {
  const waited = /Deadline exceeded after (\d+(?:\.\d+)?)s/.exec(err.message);
  return waited !== null && neverSent(err) && Number(waited[1]) * 1000 < EXPIRED_AT_START_MS;
}

/**
 * Whether a failed call says something about the member it went to: it refused or dropped the
 * connection, or the call waited for it and never left. Not etcd's own answers ("etcdserver:
 * leader changed", "no leader", "request timed out"): they come from a live member and are about
 * the cluster. Not a deadline after the call reached the member, nor a cancellation (etcd3
 * cancels a member's calls when one of them fails): while the leader is gone every member's
 * calls end so, and counting them skipped every live member until no call could be sent at all.
 * Not a deadline spent before the call was made: while quorum was lost, the health probe's
 * attempts after its deadline skipped the one live member (bench/RESULTS.md, nack15).
 */
export function memberAtFault(err: Error): boolean {
  return !/etcdserver:/.test(err.message) && (err instanceof GRPCUnavailableError || (neverSent(err) && !expiredAtStart(err)));
}

/**
 * Whether a unary call may be sent again (to another member, after a back-off): also when every
 * member it drew was being skipped, since one of them will be tried again before long. Not once
 * the caller's own deadline is spent: every further attempt would carry it.
 */
export function worthRetrying(err: Error): boolean {
  return !expiredAtStart(err) && (isRecoverableError(err) || neverSent(err) || isBrokenCircuitError(err));
}

/** A constant 300 ms back-off (cockatiel's IBackoff shape: a duration and the next one). */
const QUICK_WATCH_BACKOFF = { duration: 300, next: () => QUICK_WATCH_BACKOFF };
/**
 * A member that failed this many calls in a row is skipped for this long, then one call tries it
 * again (etcd3's own figures). Not shorter: that call waits out its deadline when the member's
 * host drops packets instead of refusing, and the others serve meanwhile.
 */
const MEMBER_FAILURES_TO_SKIP = 3;
const MEMBER_SKIP_MS = 5_000;

/**
 * etcd refuses pings more often than its --grpc-keepalive-min-time (default 5 s) with a GOAWAY,
 * and pings without a call open whatever the interval (its policy has no PermitWithoutStream), so
 * pings go every 6 s and only while a call is open (grpc-js's default). A hung member is left
 * within ~9 s.
 */
const KEEPALIVE_TIME_MS = 6_000;
const KEEPALIVE_TIMEOUT_MS = 3_000;

/**
 * The back-off between a unary call's attempts: doubling from 50 ms to 800 ms, each drawn from
 * its upper half so replicas do not retry in step. Attempts go on until the call's budget is
 * spent, not for a fixed count: eight (1.6–3.2 s of pauses) outlast an election, but not a
 * member skip (5 s). When every member had just been skipped (quorum lost, then back), a write
 * ran out of attempts before any member was tried again, although etcd had a quorum (CI,
 * test/ha/etcd-store.test.ts "quorum back").
 */
const RETRY_BACKOFF = { generator: halfJitterGenerator, initialDelay: 50, maxDelay: 800 };

/**
 * What every unary call goes through: retried on another member after a back-off while it is
 * worth retrying, with no new attempt once `budgetMs` has passed since the first. Each attempt
 * has its own deadline (the call timeout), so a call ends within the budget plus one deadline.
 *
 * Why a back-off: when the leader dies, the other members answer "leader changed" or "no leader"
 * at once until a new one is elected (about one election timeout), and the dead member refuses
 * at once. Three attempts with no pause, etcd3's default, were all spent within milliseconds, and
 * a write with one member of three down answered 503 (5 of 32 leader kills under load; none of
 * 24 with these policies and memberPolicy's: bench/RESULTS.md, ha13).
 */
export function unaryCallPolicy(budgetMs: number): IPolicy {
  const attempts = retry(handleWhen(worthRetrying), { maxAttempts: Number.POSITIVE_INFINITY, backoff: new ExponentialBackoff(RETRY_BACKOFF) });
  return wrap(timeout(budgetMs, { strategy: TimeoutStrategy.Cooperative, abortOnReturn: false }).dangerouslyUnref(), attempts.dangerouslyUnref());
}

/** Per member: skipped for `skipMs` after failing calls in a row, but only for failures that are its own. */
export function memberPolicy(skipMs = MEMBER_SKIP_MS): IPolicy {
  return circuitBreaker(handleWhen(memberAtFault), { halfOpenAfter: skipMs, breaker: new ConsecutiveBreaker(MEMBER_FAILURES_TO_SKIP) });
}

/** The etcd3 client options: files are read here, so a missing certificate fails at start with its path. */
export function etcdClientOptions(settings: EtcdSettings, read: ReadFile = readFileSync): IOptions {
  const file = (path: string, what: string): Buffer => {
    try {
      return read(path);
    } catch (err) {
      throw new Error(`store.etcd.${what}: cannot read ${path}: ${(err as Error).message}`, { cause: err });
    }
  };
  const { tls } = settings;
  const callTimeoutMs = settings.writeTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
  const password =
    settings.passwordFile !== undefined ? file(settings.passwordFile, 'passwordFile').toString('utf8').trim() : settings.password;
  return {
    hosts: [...settings.endpoints],
    dialTimeout: 3_000,
    // Listings answer with everything under a prefix in one message (the store's mirror lists the
    // whole prefix at start and after a compaction): gRPC's default 4 MiB refused them once a
    // fleet's catalog, audit log and replication records passed it, and the store could not start.
    //
    // Keepalive pings on a connection with a call open (the watch and lease streams): a member that
    // stops answering without closing its connections (a frozen process, a host that lost power or
    // its network) left the replica's watch silent, never an error, so the replica served a stale
    // catalog, answered its own committed writes 503 and never took a dead replica's clusters
    // over, for as long as the member hung (a review's finding). A ping unanswered for
    // KEEPALIVE_TIMEOUT_MS closes the connection, and the watch is opened again (on the hung
    // member again, watch-reopen.ts opens it once more).
    grpcOptions: {
      'grpc.initial_reconnect_backoff_ms': 200,
      'grpc.max_reconnect_backoff_ms': 2_000,
      'grpc.max_receive_message_length': -1,
      'grpc.keepalive_time_ms': KEEPALIVE_TIME_MS,
      'grpc.keepalive_timeout_ms': KEEPALIVE_TIMEOUT_MS,
    },
    // Every unary call gets its own deadline (a watch or lease stream none), so a retry has time.
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: new Date(Date.now() + callTimeoutMs) }),
    // etcd3 retries a call on another member when gRPC reports it unavailable. A call routed to a
    // member that just died can also stall until its deadline without ever being sent (gRPC-js
    // waits on the dead connection's name resolution): that is safe to send elsewhere too.
    faultHandling: {
      // Two deadlines' worth of attempts: the first may wait out its whole deadline on a member
      // that forwards it to the dead leader, and the retry after the election must still go.
      global: unaryCallPolicy(2 * callTimeoutMs),
      host: () => memberPolicy(),
      // Watches (the mirror, replication) come back within 300 ms of a member's return; etcd3's
      // default back-off grows to 30 s, which would keep a replica stale long after etcd healed.
      watchBackoff: QUICK_WATCH_BACKOFF,
    },
    ...(tls?.ca !== undefined
      ? {
          credentials: {
            rootCertificate: file(tls.ca, 'tls.ca'),
            ...(tls.cert !== undefined ? { certChain: file(tls.cert, 'tls.cert') } : {}),
            ...(tls.key !== undefined ? { privateKey: file(tls.key, 'tls.key') } : {}),
          },
        }
      : {}),
    ...(settings.username !== undefined && password !== undefined ? { auth: { username: settings.username, password } } : {}),
  };
}

/** A connected-on-demand etcd3 client for these settings (close it with `client.close()`). */
export function buildEtcdClient(settings: EtcdSettings, read?: ReadFile): Etcd3 {
  return new Etcd3(etcdClientOptions(settings, read));
}
