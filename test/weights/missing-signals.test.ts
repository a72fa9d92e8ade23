import { describe, expect, it } from 'vitest';
import { WeightEngine } from '../../src/balancing/engine/weight-engine.js';
import { steeringSignals, steersOn } from '../../src/balancing/engine/steering.js';
import type { WeightingPolicy } from '../../src/balancing/engine/types.js';
import type { Catalog } from '../../src/catalog/types.js';
import { AdaptiveWeights } from '../../src/weights/adaptive-weights.js';
import { MissingSignalsLog, type MissingSignals } from '../../src/weights/missing-signals.js';

const pid = (metric?: 'cpu' | 'inflight' | 'max' | 'latency' | 'cpu-latency'): WeightingPolicy => ({ kind: 'pid', ...(metric ? { metric } : {}) }) as WeightingPolicy;

describe('steeringSignals', () => {
  it('names the sample fields each policy steers on', () => {
    expect(steeringSignals({ kind: 'static' } as WeightingPolicy)).toEqual([]);
    expect(steeringSignals(pid())).toEqual(['cpu']);
    expect(steeringSignals(pid('inflight'))).toEqual(['inflight']);
    expect(steeringSignals(pid('max'))).toEqual(['cpu', 'inflight']);
    expect(steeringSignals(pid('latency'))).toEqual(['latencyMs']);
    expect(steeringSignals({ kind: 'ewma' } as WeightingPolicy)).toEqual(['latencyMs']);
    expect(steeringSignals({ kind: 'blend', parts: { pid: 0.5, ewma: 0.5 } } as WeightingPolicy)).toEqual(['cpu', 'latencyMs']);
    expect(steeringSignals({ kind: 'blend', parts: { pid: 0, ewma: 1 } } as WeightingPolicy)).toEqual(['latencyMs']);
  });

  it('a sample steers when it carries any one of them', () => {
    expect(steersOn(pid('max'), { at: 0, inflight: 3 })).toBe(true);
    expect(steersOn(pid('cpu'), { at: 0, latencyMs: 3 })).toBe(false);
    expect(steersOn({ kind: 'static' } as WeightingPolicy, { at: 0, cpu: 0.5 })).toBe(false);
  });
});

function catalogWith(weighting: WeightingPolicy): Catalog {
  const endpoint = (port: number) => ({
    address: '10.0.0.1',
    port,
    weight: 1,
    health: 'HEALTHY' as const,
    priority: 0,
    locality: { region: '', zone: '', subZone: '' },
  });
  return { clusters: [{ name: 'web', weighting, endpoints: [endpoint(80), endpoint(81)] }], listeners: [] } as unknown as Catalog;
}

describe('AdaptiveWeights.missingSignals', () => {
  it('lists the endpoints that never sent the signal their policy steers on, until they do', () => {
    const adaptive = new AdaptiveWeights(new WeightEngine({ safety: { tickMs: 1_000 } }));
    adaptive.setCatalog(catalogWith(pid('cpu')));
    adaptive.tick(1_000);
    const before = adaptive.missingSignals('web');
    expect(before?.signals).toEqual(['cpu']);
    expect(before?.endpoints).toEqual(['10.0.0.1:80', '10.0.0.1:81']);
    expect(before?.of).toBe(2);
    expect(before?.howToProvide.join(' ')).toMatch(/endpoint-load-metrics.*cpu_utilization.*\/v1\/reports/);
    expect(before?.effect).toMatch(/static weights/);

    // A latency sample is not what a cpu PID steers on: still missing.
    adaptive.observeSample('web', '10.0.0.1:80', { at: 1_500, latencyMs: 20 });
    adaptive.tick(2_000);
    expect(adaptive.missingSignals('web')?.endpoints).toEqual(['10.0.0.1:80', '10.0.0.1:81']);

    adaptive.observeSample('web', '10.0.0.1:80', { at: 2_500, cpu: 0.5 });
    adaptive.tick(3_000);
    expect(adaptive.missingSignals('web')?.endpoints).toEqual(['10.0.0.1:81']);
    adaptive.observeSample('web', '10.0.0.1:81', { at: 3_500, cpu: 0.4 });
    adaptive.tick(4_000);
    expect(adaptive.missingSignals('web')).toBeUndefined();
    expect(adaptive.allMissingSignals().size).toBe(0);
  });

  it('a static cluster misses nothing', () => {
    const adaptive = new AdaptiveWeights(new WeightEngine({ safety: { tickMs: 1_000 } }));
    adaptive.setCatalog(catalogWith({ kind: 'static' } as WeightingPolicy));
    adaptive.tick(1_000);
    expect(adaptive.missingSignals('web')).toBeUndefined();
  });
});

describe('MissingSignalsLog', () => {
  const notice = (endpoints: string[]): MissingSignals => ({ signals: ['cpu'], endpoints, of: 3, howToProvide: ['send cpu'], effect: 'held static' });

  it('logs a notice when it appears or changes, repeats it only after repeatMs, and says when it is resolved', () => {
    const lines: { level: string; obj: object; msg: string }[] = [];
    const log = { warn: (obj: object, msg: string) => void lines.push({ level: 'warn', obj, msg }), info: (obj: object, msg: string) => void lines.push({ level: 'info', obj, msg }) };
    let notices = new Map([['web', notice(['a', 'b'])]]);
    let now = 0;
    const reporter = new MissingSignalsLog({ notices: () => notices, log, repeatMs: 60_000, now: () => now });
    reporter.check();
    expect(lines).toHaveLength(1);
    expect(lines[0]?.msg).toBe('cluster web: no cpu signal from 2 of 3 endpoints: held static');
    now = 10_000;
    reporter.check();
    expect(lines).toHaveLength(1);
    notices = new Map([['web', notice(['b'])]]);
    reporter.check();
    expect(lines).toHaveLength(2);
    now = 80_000;
    reporter.check();
    expect(lines).toHaveLength(3);
    notices = new Map();
    reporter.check();
    reporter.check();
    expect(lines.map((l) => l.level)).toEqual(['warn', 'warn', 'warn', 'info']);
  });
});
