import { describe, expect, it } from 'vitest';
import { METRIC_LIMITS, parseEndpoint, validateBatch, validateSample } from '../../src/signals/report-validation.js';

const NOW = Date.parse('2024-05-01T12:00:00Z');
const knows = (cluster: string, endpoint?: string) =>
  cluster === 'web' && (endpoint === undefined || endpoint === '10.0.0.1:8080' || endpoint === '::1:9090');
const opts = { knows, now: NOW };
const ok = { cluster: 'web', endpoint: '10.0.0.1:8080', time: NOW - 1000, cpu: 0.5 };

function reasons(raw: unknown): { field: string; reason: string }[] {
  const r = validateSample(raw, 0, opts);
  return Array.isArray(r) ? r.map(({ field, reason }) => ({ field, reason })) : [];
}

describe('report validation', () => {
  it('accepts a valid sample, ms or ISO time, and IPv6 in brackets', () => {
    expect(validateSample(ok, 3, opts)).toEqual({ index: 3, cluster: 'web', key: '10.0.0.1:8080', time: NOW - 1000, fields: { cpu: 0.5 } });
    const iso = validateSample({ ...ok, time: '2024-05-01T11:59:30Z' }, 0, opts);
    expect(Array.isArray(iso) ? iso : iso.time).toBe(NOW - 30_000);
    const v6 = validateSample({ ...ok, endpoint: '[::1]:9090' }, 0, opts);
    expect(Array.isArray(v6) ? v6 : v6.key).toBe('::1:9090');
    const noTime = validateSample({ cluster: 'web', endpoint: '10.0.0.1:8080', rps: 0 }, 0, opts);
    expect(Array.isArray(noTime) ? noTime : noTime.time).toBe(NOW);
    const all = validateSample({ ...ok, memory: 1, inflight: 3, latencyMs: 12.5, rps: 100, errors: 0 }, 0, opts);
    expect(Array.isArray(all) ? all : all.fields).toEqual({ cpu: 0.5, memory: 1, inflight: 3, latencyMs: 12.5, rps: 100, errors: 0 });
    // Every limit is inclusive.
    const limits = validateSample({ ...ok, ...METRIC_LIMITS }, 0, opts);
    expect(Array.isArray(limits) ? limits : limits.fields).toEqual(METRIC_LIMITS);
  });

  it.each([
    ['NaN', { ...ok, cpu: NaN }, 'cpu', /NaN/],
    ['Infinity', { ...ok, rps: Infinity }, 'rps', /not finite/],
    ['negative', { ...ok, inflight: -1 }, 'inflight', /negative/],
    ['cpu above 1', { ...ok, cpu: 42 }, 'cpu', /outside 0\.\.1/],
    ['memory above 1', { ...ok, memory: 1.01 }, 'memory', /outside 0\.\.1/],
    ['a latency over an hour', { ...ok, latencyMs: 3_600_001 }, 'latencyMs', /above 3600000, the most a report may carry/],
    ['a huge in-flight count', { ...ok, inflight: Number.MAX_VALUE }, 'inflight', /above 1000000000/],
    ['a huge request rate', { ...ok, rps: 1e300 }, 'rps', /above 1000000000/],
    ['a huge error rate', { ...ok, errors: 1e9 + 1 }, 'errors', /above 1000000000/],
    ['a string metric', { ...ok, latencyMs: '12' }, 'latencyMs', /number/],
    ['unknown cluster', { ...ok, cluster: 'nope' }, 'cluster', /unknown cluster/],
    ['missing cluster', { ...ok, cluster: undefined }, 'cluster', /required/],
    ['unknown endpoint', { ...ok, endpoint: '10.0.0.2:8080' }, 'endpoint', /unknown endpoint/],
    ['malformed endpoint', { ...ok, endpoint: '10.0.0.1' }, 'endpoint', /address:port/],
    ['port out of range', { ...ok, endpoint: '10.0.0.1:70000' }, 'endpoint', /address:port/],
    ['future time', { ...ok, time: NOW + 6_000 }, 'time', /in the future/],
    ['old time', { ...ok, time: NOW - 301_000 }, 'time', /old/],
    ['seconds instead of ms', { ...ok, time: NOW / 1000 }, 'time', /not seconds/],
    ['unparseable time', { ...ok, time: 'yesterday' }, 'time', /ISO 8601/],
    ['ISO without zone', { ...ok, time: '2024-05-01T12:00:00' }, 'time', /ISO 8601/],
    ['no metric', { cluster: 'web', endpoint: '10.0.0.1:8080' }, 'sample', /no metric/],
    ['unknown field', { ...ok, gpu: 0.3 }, 'gpu', /unknown field/],
    ['not an object', 42, 'sample', /object/],
  ])('rejects %s', (_name, raw, field, reason) => {
    const r = reasons(raw);
    expect(r.length).toBeGreaterThan(0);
    expect(r.find((x) => x.field === field)?.reason).toMatch(reason);
  });

  it('lists every problem of a sample', () => {
    expect(reasons({ cluster: 'web', endpoint: '10.0.0.1:8080', cpu: -1, memory: 2 }).map((r) => r.field)).toEqual(['cpu', 'memory']);
  });

  it('rejects a sample\'s unknown fields in one entry, however many, and does not repeat long names whole', () => {
    // One entry each made 200,000 names 200,000 rejections, and spreading them overflowed the stack.
    const raw: Record<string, unknown> = { ...ok };
    for (let i = 0; i < 200_000; i++) raw[`x${i}`] = 0;
    const r = validateBatch([raw], opts);
    if (!r.ok) throw new Error(r.reason);
    expect(r.rejected).toEqual([{ index: 0, field: 'x0', reason: expect.stringMatching(/^unknown field and 199999 more unknown fields \(known: cluster, /) as unknown }]);
    const long = 'y'.repeat(10_000);
    const [one] = reasons({ ...ok, [long]: 1, cluster: long });
    expect(one?.field).toBe(`${'y'.repeat(300)}…`);
    expect(JSON.stringify(reasons({ ...ok, [long]: 1, cluster: long })).length).toBeLessThan(1_000);
  });

  it('keeps the valid rest of a batch and indexes the rejections', () => {
    const r = validateBatch([ok, { ...ok, cpu: NaN }, { ...ok, rps: 5 }, { ...ok, cluster: 'x' }], opts);
    if (!r.ok) throw new Error(r.reason);
    expect(r.valid.map((v) => v.index)).toEqual([0, 2]);
    expect(r.rejected.map((x) => [x.index, x.field])).toEqual([
      [1, 'cpu'],
      [3, 'cluster'],
    ]);
  });

  it('refuses a batch that is not a list or is too large', () => {
    expect(validateBatch({}, opts)).toMatchObject({ ok: false, code: 'NOT_A_LIST' });
    expect(validateBatch(Array.from({ length: 11 }, () => ok), { ...opts, maxBatch: 10 })).toMatchObject({ ok: false, code: 'TOO_LARGE' });
    expect(validateBatch(Array.from({ length: 10_000 }, () => ok), opts).ok).toBe(true);
  });

  it('parses endpoints', () => {
    expect(parseEndpoint('10.0.0.1:80')).toEqual({ address: '10.0.0.1', port: 80 });
    expect(parseEndpoint('[fe80::1]:443')).toEqual({ address: 'fe80::1', port: 443 });
    expect(parseEndpoint('::1:8080')).toEqual({ address: '::1', port: 8080 });
    expect(parseEndpoint(':80')).toBeUndefined();
    expect(parseEndpoint('host:0')).toBeUndefined();
    expect(parseEndpoint('host:x')).toBeUndefined();
  });
});
