import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { WeightOverrides } from '../../src/catalog/weight-overrides.js';
import type { SignalListener } from '../../src/signals/signal-store.js';
import { WeightLoop, type WeightLoopOptions } from '../../src/weights/weight-loop.js';

type Weights = ReadonlyMap<string, ReadonlyMap<string, number>>;

/** An engine adapter whose ticks return what the test queues, and which records what it is told. */
function fakeAdaptive(ticks: (WeightOverrides | undefined)[]) {
  const seen = { seeded: [] as [string, ReadonlyMap<string, number>][], samples: [] as string[], probes: [] as string[], tickedAt: [] as number[] };
  const adaptive: WeightLoopOptions['adaptive'] = {
    seed: (cluster, weights) => void seen.seeded.push([cluster, weights]),
    observeSample: (cluster, key) => (seen.samples.push(`${cluster}/${key}`), true),
    observeProbe: (cluster, key) => void seen.probes.push(`${cluster}/${key}`),
    tick: (now) => (seen.tickedAt.push(now), ticks.shift()),
    // One slice: the tick completes within the interval's callback.
    tickInSlices: (now) => oneSlice(() => (seen.tickedAt.push(now), ticks.shift())),
    adaptiveWeights: () => new Map([['web', new Map([['10.0.0.1:80', 7]])]]),
    alarmed: false,
    tickAlarmed: () => ({ clusters: 0, endpoints: 0, overrides: undefined }),
  };
  return { adaptive, seen };
}

/** A tick of a single slice (no yield): the first next() returns its result. */
function oneSlice(result: () => WeightOverrides | undefined): Generator<void, WeightOverrides | undefined, void> {
  let done = false;
  return {
    next: () => (done ? { done: true, value: undefined } : ((done = true), { done: true, value: result() })),
    return: (value) => ({ done: true, value }),
    throw: (err: unknown) => {
      throw err;
    },
    [Symbol.iterator]() {
      return this;
    },
  } as Generator<void, WeightOverrides | undefined, void>;
}

function fakeSignals() {
  const listeners = new Set<SignalListener>();
  return {
    listeners,
    subscribe: (l: SignalListener) => (listeners.add(l), () => void listeners.delete(l)),
  };
}

const overrides = (weight: number): WeightOverrides => new Map([['web', new Map([['10.0.0.1:80', { weight }]])]]);

describe('WeightLoop', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('resumes from the archived weights: seeds the engine, ticks once and publishes the result', () => {
    const { adaptive, seen } = fakeAdaptive([overrides(7)]);
    const archived: Weights = new Map([['web', new Map([['10.0.0.1:80', 7]])]]);
    const published: WeightOverrides[] = [];
    const saved: Weights[] = [];
    const loop = new WeightLoop({
      adaptive,
      signals: fakeSignals(),
      archive: { loadWeights: () => archived, saveAllWeights: (w) => void saved.push(w) },
      tickMs: 1_000,
      publish: (o) => void published.push(o),
      now: () => 123,
    });
    loop.start();
    expect(seen.seeded).toEqual([['web', archived.get('web')]]);
    expect(seen.tickedAt).toEqual([123]);
    expect(published).toEqual([overrides(7)]);
    // Resuming republishes what was archived; it does not write it back.
    expect(saved).toEqual([]);
    loop.stop();
  });

  it('ticks every tickMs, publishing and persisting only when the published weights changed', () => {
    const { adaptive, seen } = fakeAdaptive([undefined, overrides(5), undefined, overrides(9)]);
    const published: WeightOverrides[] = [];
    const saved: Weights[] = [];
    const ticked: number[] = [];
    const loop = new WeightLoop({
      adaptive,
      signals: fakeSignals(),
      archive: { loadWeights: () => new Map(), saveAllWeights: (w) => void saved.push(w) },
      tickMs: 1_000,
      publish: (o) => void published.push(o),
      onTicked: (ms) => void ticked.push(ms),
    });
    loop.start();
    expect(published).toEqual([]);
    vi.advanceTimersByTime(3_000);
    expect(seen.tickedAt).toHaveLength(4);
    expect(ticked).toHaveLength(3);
    expect(published).toEqual([overrides(5), overrides(9)]);
    expect(saved).toEqual([adaptive.adaptiveWeights(), adaptive.adaptiveWeights()]);
    loop.stop();
  });

  it('a tick that throws holds the published weights, is reported, and the next period ticks again', () => {
    const { adaptive, seen } = fakeAdaptive([undefined, overrides(5)]);
    let failNext = false;
    const tickInSlices = adaptive.tickInSlices;
    const throwing: WeightLoopOptions['adaptive'] = {
      ...adaptive,
      tickInSlices: (now, slice) => (failNext ? ((failNext = false), oneSlice(() => { throw new RangeError('PID inputs must be finite'); })) : tickInSlices(now, slice)),
    };
    const published: WeightOverrides[] = [];
    const errors: unknown[] = [];
    const loop = new WeightLoop({
      adaptive: throwing,
      signals: fakeSignals(),
      archive: { loadWeights: () => new Map(), saveAllWeights: () => undefined },
      tickMs: 1_000,
      publish: (o) => void published.push(o),
      onTickError: (err) => void errors.push(err),
    });
    loop.start();
    failNext = true;
    expect(() => vi.advanceTimersByTime(1_000)).not.toThrow();
    expect(errors).toHaveLength(1);
    expect(String(errors[0])).toContain('PID inputs must be finite');
    expect(published).toEqual([]);
    vi.advanceTimersByTime(1_000);
    expect(published).toEqual([overrides(5)]);
    expect(seen.tickedAt).toHaveLength(2);
    loop.stop();
  });

  it('archives only the clusters whose published weights changed since they were archived, and retries a failed save', async () => {
    const { adaptive } = fakeAdaptive([overrides(1), overrides(2), overrides(3), overrides(4)]);
    const web = new Map([['10.0.0.1:80', 7]]);
    const api = new Map([['10.0.0.2:80', 3]]);
    let current: Weights = new Map([['web', web], ['api', api]]);
    adaptive.adaptiveWeights = () => new Map(current);
    const saved: string[][] = [];
    let fail = false;
    const loop = new WeightLoop({
      adaptive,
      signals: fakeSignals(),
      archive: {
        loadWeights: () => new Map(),
        saveAllWeights: async (w) => {
          saved.push([...w.keys()]);
          if (fail) throw new Error('etcd away');
        },
      },
      tickMs: 1_000,
      publish: () => undefined,
      onArchiveError: () => undefined,
    });
    loop.start(); // resumes: publishes, archives nothing
    vi.advanceTimersByTime(1_000);
    await Promise.resolve();
    expect(saved).toEqual([['web', 'api']]);
    current = new Map([['web', new Map([['10.0.0.1:80', 8]])], ['api', api]]);
    fail = true;
    vi.advanceTimersByTime(1_000);
    await Promise.resolve();
    expect(saved.at(-1)).toEqual(['web']);
    fail = false;
    vi.advanceTimersByTime(1_000);
    await Promise.resolve();
    // The failed save is not remembered: web goes again (api still unchanged).
    expect(saved.at(-1)).toEqual(['web']);
    expect(saved).toHaveLength(3);
    loop.stop();
  });

  it('feeds signals to the engine while running, and stops ticking and listening once stopped', () => {
    const { adaptive, seen } = fakeAdaptive([]);
    const signals = fakeSignals();
    const loop = new WeightLoop({
      adaptive,
      signals,
      archive: { loadWeights: () => new Map(), saveAllWeights: () => undefined },
      tickMs: 1_000,
      publish: () => undefined,
    });
    loop.start();
    for (const l of signals.listeners) {
      l({ kind: 'sample', cluster: 'web', key: '10.0.0.1:80', sample: { at: 0, source: 'report' } });
      l({ kind: 'probe', cluster: 'web', key: '10.0.0.2:80', result: { at: 0, ok: true } });
    }
    expect(seen.samples).toEqual(['web/10.0.0.1:80']);
    expect(seen.probes).toEqual(['web/10.0.0.2:80']);
    loop.stop();
    expect(signals.listeners.size).toBe(0);
    const ticks = seen.tickedAt.length;
    vi.advanceTimersByTime(10_000);
    expect(seen.tickedAt).toHaveLength(ticks);
  });

  it('runs a tick in slices with the event loop free between them, publishes once at the end and never overlaps two ticks', () => {
    const { adaptive } = fakeAdaptive([]);
    const events: string[] = [];
    let started = 0;
    adaptive.tickInSlices = function* (now, sliceEndpoints) {
      started++;
      events.push(`slice 1 @${now} /${sliceEndpoints}`);
      yield;
      events.push('slice 2');
      yield;
      events.push('slice 3');
      return overrides(started);
    };
    const published: WeightOverrides[] = [];
    const ticked: number[] = [];
    let now = 0;
    const loop = new WeightLoop({
      adaptive,
      signals: fakeSignals(),
      archive: { loadWeights: () => new Map(), saveAllWeights: () => undefined },
      tickMs: 1_000,
      sliceEndpoints: 250,
      publish: (o) => void published.push(o),
      onTicked: (ms) => void ticked.push(ms),
      now: () => now,
    });
    loop.start();
    now = 1_000;
    vi.advanceTimersByTime(1_000);
    expect(events).toEqual(['slice 1 @1000 /250']);
    // Other work runs between slices: an immediate queued now runs before the second slice.
    setImmediate(() => events.push('other work'));
    loop.tick(); // due while the first tick runs: not started twice
    expect(started).toBe(1);
    expect(published).toEqual([]);
    // Each immediate in turn: the other work, then the second slice, then the last.
    for (let i = 0; i < 3; i++) vi.advanceTimersToNextTimer();
    expect(events).toEqual(['slice 1 @1000 /250', 'other work', 'slice 2', 'slice 3']);
    expect(published).toEqual([overrides(1)]);
    expect(ticked).toHaveLength(1);
    loop.stop();
  });

  it('abandons a tick in flight when stopped: nothing from it is published', () => {
    const { adaptive } = fakeAdaptive([]);
    let slices = 0;
    adaptive.tickInSlices = function* () {
      slices++;
      yield;
      slices++;
      return overrides(3);
    };
    const published: WeightOverrides[] = [];
    const loop = new WeightLoop({
      adaptive,
      signals: fakeSignals(),
      archive: { loadWeights: () => new Map(), saveAllWeights: () => undefined },
      tickMs: 1_000,
      publish: (o) => void published.push(o),
    });
    loop.start();
    vi.advanceTimersByTime(1_000);
    expect(slices).toBe(1);
    loop.stop();
    vi.advanceTimersByTime(5_000);
    expect(slices).toBe(1);
    expect(published).toEqual([]);
  });
});

describe('WeightLoop: its default clock', () => {
  it('is not moved by a step of the wall clock (an hour back made the engine refuse every new sample)', () => {
    const { adaptive, seen } = fakeAdaptive([overrides(7)]);
    const before = Date.now();
    const stepped = vi.spyOn(Date, 'now').mockReturnValue(before - 3_600_000);
    try {
      const loop = new WeightLoop({
        adaptive,
        signals: fakeSignals(),
        archive: { loadWeights: () => new Map([['web', new Map([['10.0.0.1:80', 7]])]]), saveAllWeights: () => undefined },
        tickMs: 60_000,
        publish: () => undefined,
      });
      loop.start();
      loop.stop();
    } finally {
      stepped.mockRestore();
    }
    expect(seen.tickedAt).toHaveLength(1);
    // Within the drift of the monotonic clock from the wall clock since this process started.
    expect(Math.abs((seen.tickedAt[0] as number) - before)).toBeLessThan(5_000);
  });
});
