import { describe, expect, it, vi } from 'vitest';
import type { ProbeResult as EngineProbe, Sample as EngineSample } from '../../src/balancing/engine/types.js';
import { SignalStore, type SignalEvent } from '../../src/signals/signal-store.js';

describe('SignalStore', () => {
  it('keeps the latest samples per endpoint in a bounded ring, ordered by time', () => {
    let now = 1000;
    const store = new SignalStore({ now: () => now, samplesPerEndpoint: 3 });
    for (let i = 0; i < 5; i++) store.record('web', 'a:1', { at: 100 * i, rps: i });
    expect(store.samples('web', 'a:1').map((s) => s.rps)).toEqual([2, 3, 4]);
    expect(store.latest('web', 'a:1')?.rps).toBe(4);
    // Out of order: placed by time; older than a full ring: dropped.
    expect(store.record('web', 'a:1', { at: 350, rps: 35 })).toBe(true);
    expect(store.samples('web', 'a:1').map((s) => s.at)).toEqual([300, 350, 400]);
    expect(store.record('web', 'a:1', { at: 10, rps: 0 })).toBe(false);
    // The newest sample's age is measured on the store's clock.
    expect(store.now() - (store.latest('web', 'a:1')?.at ?? NaN)).toBe(600);
    now = 2000;
    expect(store.now() - (store.latest('web', 'a:1')?.at ?? NaN)).toBe(1600);
    expect(store.latest('web', 'nope:1')).toBeUndefined();
    expect(store.latest('other', 'a:1')).toBeUndefined();
  });

  it('passes on a sample older than a full ring when it brings a field none of the kept ones has: one fast source does not silence a slower one', () => {
    const store = new SignalStore({ now: () => 1000, samplesPerEndpoint: 3 });
    for (const at of [100, 200, 300]) store.record('web', 'a:1', { at, cpu: 0.5 });
    const events: SignalEvent[] = [];
    store.subscribe((e) => events.push(e));
    // Another source's latency, measured before the fast source's samples: not kept, but news.
    expect(store.record('web', 'a:1', { at: 50, latencyMs: 12 })).toBe(true);
    expect(events).toEqual([{ kind: 'sample', cluster: 'web', key: 'a:1', sample: { at: 50, latencyMs: 12 } }]);
    expect(store.samples('web', 'a:1').map((s) => s.at)).toEqual([100, 200, 300]);
    // A cpu that old is not: newer ones are kept.
    expect(store.record('web', 'a:1', { at: 40, cpu: 0.1 })).toBe(false);
    expect(events).toHaveLength(1);
  });

  it('drops non-finite fields and samples without any field', () => {
    const store = new SignalStore({ now: () => 0 });
    expect(store.record('web', 'a:1', { at: 1, cpu: NaN })).toBe(false);
    expect(store.record('web', 'a:1', { at: 1, cpu: Infinity, rps: 3 })).toBe(true);
    expect(store.latest('web', 'a:1')).toEqual({ at: 1, rps: 3 });
  });

  it('merges the freshest value of each field; latestWith finds the newest carrying a field', () => {
    const store = new SignalStore({ now: () => 10_000 });
    store.record('web', 'a:1', { at: 8_000, cpu: 0.4, source: 'report' });
    store.record('web', 'a:1', { at: 9_000, rps: 10, source: 'lrs' });
    expect(store.latest('web', 'a:1')?.cpu).toBeUndefined();
    expect(store.latestWith('web', 'a:1', 'cpu')?.cpu).toBe(0.4);
    expect(store.merged('web', 'a:1')).toEqual({ at: 8_000, cpu: 0.4, rps: 10 });
    expect(store.merged('web', 'a:1', 1_500)).toEqual({ at: 9_000, rps: 10 });
    expect(store.mergedByEndpoint('web').get('a:1')?.cpu).toBe(0.4);
  });

  it('keeps the newest probe results', () => {
    const store = new SignalStore({ now: () => 0, probesPerEndpoint: 2 });
    store.recordProbe('web', 'a:1', { ok: true, at: 1, latencyMs: 3 });
    store.recordProbe('web', 'a:1', { ok: false, at: 2, error: 'timeout' });
    store.recordProbe('web', 'a:1', { ok: true, at: 3, latencyMs: 4 });
    expect(store.probes('web', 'a:1').map((p) => p.at)).toEqual([2, 3]);
    expect(store.latestProbe('web', 'a:1')?.ok).toBe(true);
    expect(store.latestProbe('web', 'a:1')?.latencyMs).toBe(4);
  });

  it('notifies listeners, survives a throwing one, and unsubscribes', () => {
    const errors: unknown[] = [];
    const store = new SignalStore({ now: () => 0, onListenerError: (e) => errors.push(e) });
    const seen: SignalEvent[] = [];
    store.subscribe(() => {
      throw new Error('boom');
    });
    const off = store.subscribe((e) => seen.push(e));
    store.record('web', 'a:1', { at: 1, cpu: 0.1 });
    store.recordProbe('web', 'a:1', { ok: true, at: 1 });
    off();
    store.record('web', 'a:1', { at: 2, cpu: 0.2 });
    expect(seen.map((e) => e.kind)).toEqual(['sample', 'probe']);
    expect(errors).toHaveLength(3); // the throwing listener is still subscribed
  });

  it('bounds the endpoint count, forgets and retains', () => {
    const store = new SignalStore({ now: () => 0, maxEndpoints: 2 });
    expect(store.record('web', 'a:1', { at: 1, rps: 1 })).toBe(true);
    expect(store.record('web', 'b:1', { at: 1, rps: 1 })).toBe(true);
    expect(store.record('web', 'c:1', { at: 1, rps: 1 })).toBe(false);
    store.retain(new Map([['web', ['a:1']]]));
    expect(store.endpointKeys('web')).toEqual(['a:1']);
    expect(store.record('api', 'c:1', { at: 1, rps: 1 })).toBe(true);
    store.forget('api');
    expect(store.stats()).toEqual({ clusters: 1, endpoints: 1 });
  });

  it('produces what the weight engine consumes', () => {
    const store = new SignalStore({ now: () => 0 });
    store.record('web', 'a:1', { at: 1, cpu: 0.3 });
    store.recordProbe('web', 'a:1', { ok: true, at: 1 });
    const s: EngineSample | undefined = store.latest('web', 'a:1');
    const p: EngineProbe | undefined = store.latestProbe('web', 'a:1');
    expect(s?.cpu).toBe(0.3);
    expect(p?.ok).toBe(true);
  });
});

describe('SignalStore: its default clock', () => {
  it('is not moved by a step of the wall clock (the engine compares its samples on it)', () => {
    const before = Date.now();
    const stepped = vi.spyOn(Date, 'now').mockReturnValue(before - 3_600_000);
    try {
      // Within the drift of the monotonic clock from the wall clock since this process started.
      expect(Math.abs(new SignalStore().now() - before)).toBeLessThan(5_000);
    } finally {
      stepped.mockRestore();
    }
  });
});
