import { afterEach, describe, expect, it, vi } from 'vitest';
import { GrpcFormGate } from '../../src/xds/grpc-form-gate.js';

/** A gate over a queue that records what it was given, on a flag the test sets. */
function gate(waitMs = 5_000) {
  const queued: string[] = [];
  const state = { ready: false, requested: 0 };
  const next = { push: (task: () => void) => (task(), () => undefined) };
  const g = new GrpcFormGate(next, () => state.ready, () => void state.requested++, waitMs);
  const push = (form: 'envoy' | 'grpc', name: string) => g.pushFor(form, () => void queued.push(name));
  return { g, queued, state, push };
}

describe('GrpcFormGate', () => {
  afterEach(() => vi.useRealTimers());

  it('passes an Envoy on at once, and holds a gRPC client until its form is out, asking for it', () => {
    const { g, queued, state, push } = gate();
    push('envoy', 'envoy');
    push('grpc', 'grpc');
    expect(queued).toEqual(['envoy']);
    expect(state.requested).toBe(1);
    expect(g.size).toBe(1);
    g.check();
    expect(queued).toEqual(['envoy']);
    state.ready = true;
    g.check();
    expect(queued).toEqual(['envoy', 'grpc']);
    push('grpc', 'later');
    expect(queued).toEqual(['envoy', 'grpc', 'later']);
    g.close();
  });

  it('drops a held client whose stream closed, and answers the rest in Envoy\'s form when the form never comes (fail static)', () => {
    vi.useFakeTimers();
    const { g, queued, push } = gate(5_000);
    const drop = push('grpc', 'gone');
    push('grpc', 'waiting');
    drop();
    vi.advanceTimersByTime(4_999);
    expect(queued).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(queued).toEqual(['waiting']);
    expect(g.size).toBe(0);
    g.close();
  });
});
