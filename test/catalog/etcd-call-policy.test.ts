/**
 * The etcd client's fault handling (etcd-client.ts): a call outlasts an election by retrying
 * with back-off, gives up once its budget is spent, and a member answering with etcd's own
 * errors is never skipped. Real timers, short budgets; the real election is in
 * test/ha/etcd-store.test.ts.
 */
import { BrokenCircuitError } from 'cockatiel';
import { GRPCCancelledError, GRPCDeadlineExceededError, GRPCInvalidArgumentError, GRPCUnavailableError } from 'etcd3';
import { describe, expect, it } from 'vitest';
import { memberPolicy, unaryCallPolicy } from '../../src/catalog/store/etcd-client.js';

const leaderChanged = (): Error => new GRPCUnavailableError('14 UNAVAILABLE: etcdserver: leader changed');
/** What gRPC says of a call whose deadline (the caller's, the same for every attempt) had passed when it was made. */
const spentDeadline = (): Error => new GRPCDeadlineExceededError('4 DEADLINE_EXCEEDED: Deadline exceeded after 0.000s,waiting for name resolution');
const refused = (): Error => new GRPCUnavailableError('14 UNAVAILABLE: No connection established. Last error: connect ECONNREFUSED 127.0.0.1:2379');

/** A call that fails with `error()` until `ms` have passed since the first attempt, then answers. */
function failingFor(ms: number, error: () => Error): { readonly call: () => Promise<string>; readonly attempts: number[] } {
  const attempts: number[] = [];
  let start: number | undefined;
  return {
    attempts,
    call: async () => {
      const now = Date.now();
      start ??= now;
      attempts.push(now - start);
      if (now - start < ms) throw error();
      return 'ok';
    },
  };
}

describe('unaryCallPolicy', () => {
  it('outlasts an election: "leader changed" for 300 ms, then the call succeeds', async () => {
    const c = failingFor(300, leaderChanged);
    await expect(unaryCallPolicy(5_000).execute(c.call)).resolves.toBe('ok');
    // Backed off (25–50, 50–100, 100–200 ms, …): three attempts without a pause, etcd3's
    // default, would all have failed.
    expect(c.attempts.length).toBeGreaterThan(3);
    expect(c.attempts[3]).toBeGreaterThanOrEqual(170);
  });

  it('retries no more once its budget is spent, and throws the last error', async () => {
    const c = failingFor(Infinity, leaderChanged);
    await expect(unaryCallPolicy(150).execute(c.call)).rejects.toThrow(/leader changed/);
    // Pauses of at least 25, 50 and 100 ms: the fourth failure comes after the budget at the latest.
    expect(c.attempts.length).toBeGreaterThanOrEqual(2);
    expect(c.attempts.length).toBeLessThanOrEqual(4);
  });

  it('retries when every member it drew was being skipped', async () => {
    const c = failingFor(100, () => new BrokenCircuitError('Execution prevented because the circuit breaker is open'));
    await expect(unaryCallPolicy(5_000).execute(c.call)).resolves.toBe('ok');
  });

  it('keeps retrying within its budget for as long as every member is skipped (a skip lasts 5 s)', async () => {
    // 3.5 s: longer than the pauses of eight attempts (at most 3.2 s), which was the limit.
    const c = failingFor(3_500, () => new BrokenCircuitError('Execution prevented because the circuit breaker is open'));
    await expect(unaryCallPolicy(6_000).execute(c.call)).resolves.toBe('ok');
    expect(c.attempts.length).toBeGreaterThan(8);
  });

  it('stops at an attempt made after the caller\'s own deadline: every further one would carry it', async () => {
    const c = failingFor(Infinity, spentDeadline);
    await expect(unaryCallPolicy(5_000).execute(c.call)).rejects.toThrow(/after 0.000s/);
    expect(c.attempts).toHaveLength(1);
  });

  it('retries a deadline, but not what etcd refused outright', async () => {
    const late = failingFor(50, () => new GRPCDeadlineExceededError('4 DEADLINE_EXCEEDED: Deadline exceeded'));
    await expect(unaryCallPolicy(5_000).execute(late.call)).resolves.toBe('ok');
    const invalid = failingFor(Infinity, () => new GRPCInvalidArgumentError('3 INVALID_ARGUMENT: etcdserver: request is too large'));
    await expect(unaryCallPolicy(5_000).execute(invalid.call)).rejects.toThrow(/too large/);
    expect(invalid.attempts).toHaveLength(1);
  });
});

describe('memberPolicy', () => {
  it('keeps a member whose calls end as every member\'s do while the leader is gone, however many in a row', async () => {
    const p = memberPolicy();
    const endings = [
      leaderChanged,
      () => new GRPCUnavailableError('14 UNAVAILABLE: etcdserver: request timed out'),
      () => new GRPCDeadlineExceededError('4 DEADLINE_EXCEEDED: Deadline exceeded after 2.000s,remote_addr=127.0.0.1:2379'),
      () => new GRPCCancelledError('1 CANCELLED: Call cancelled'),
    ];
    for (let i = 0; i < 12; i++) await expect(p.execute(() => Promise.reject((endings[i % endings.length] as () => Error)()))).rejects.toThrow();
    await expect(p.execute(() => Promise.resolve('ok'))).resolves.toBe('ok');
  });

  it('counts a call that never left for the member (waiting for its connection) against it', async () => {
    const p = memberPolicy();
    const neverLeft = (): Error => new GRPCDeadlineExceededError('4 DEADLINE_EXCEEDED: Deadline exceeded after 3.000s,waiting for LB pick');
    for (let i = 0; i < 3; i++) await expect(p.execute(() => Promise.reject(neverLeft()))).rejects.toThrow(/LB pick/);
    await expect(p.execute(() => Promise.resolve('ok'))).rejects.toBeInstanceOf(BrokenCircuitError);
  });

  it('does not count an attempt made after the caller\'s own deadline had passed (gRPC gave up before looking for the member)', async () => {
    const p = memberPolicy();
    for (let i = 0; i < 6; i++) await expect(p.execute(() => Promise.reject(spentDeadline()))).rejects.toThrow(/after 0.000s/);
    await expect(p.execute(() => Promise.resolve('ok'))).resolves.toBe('ok');
  });

  it('skips a member that refused three calls in a row, and tries it again once the skip is over', async () => {
    const p = memberPolicy(1_000);
    for (let i = 0; i < 3; i++) await expect(p.execute(() => Promise.reject(refused()))).rejects.toThrow(/ECONNREFUSED/);
    await expect(p.execute(() => Promise.resolve('ok'))).rejects.toBeInstanceOf(BrokenCircuitError);
    const since = Date.now();
    let answer: unknown;
    while (answer !== 'ok' && Date.now() - since < 10_000) {
      answer = await p.execute(() => Promise.resolve('ok')).catch((e: unknown) => e);
      if (answer !== 'ok') await new Promise((r) => setTimeout(r, 50));
    }
    expect(answer).toBe('ok');
    expect(Date.now() - since).toBeGreaterThanOrEqual(900);
  });
});
