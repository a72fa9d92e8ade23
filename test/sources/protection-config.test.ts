import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { ConfigError, parseConfig } from '../../src/sources/config-file.js';

/** The config file's protection keys: what is accepted, and what is refused with the field's path. */

const cluster = (extra: Record<string, unknown>) =>
  YAML.stringify({ clusters: [{ name: 'c', endpoints: [{ address: '10.0.0.1', port: 80 }], ...extra }] });

function problemsOf(extra: Record<string, unknown>): string[] {
  try {
    parseConfig(cluster(extra), 'f.yaml');
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems.map((p) => `${p.path}: ${p.message}`);
  }
  throw new Error('expected the config to be rejected');
}

const parsed = (extra: Record<string, unknown>) => parseConfig(cluster(extra), 'f.yaml').catalog.clusters[0];

describe('protection config', () => {
  it('keeps what the operator wrote (defaults are applied at translation) and takes the settings block for client-side WRR', () => {
    const c = parsed({
      outlierDetection: { consecutive5xx: 3, successRate: { enabled: false } },
      retryPolicy: { numRetries: 1, retryOn: ['connect-failure', '5xx'] },
      healthCheck: { kind: 'http', path: '/healthz' },
      lbPolicy: 'CLIENT_SIDE_WEIGHTED_ROUND_ROBIN',
      clientSideWeightedRoundRobin: { blackoutPeriodMs: 0, errorUtilizationPenalty: 2 },
    });
    expect(c?.outlierDetection).toEqual({ consecutive5xx: 3, successRate: { enabled: false } });
    expect(c?.retryPolicy).toEqual({ numRetries: 1, retryOn: ['connect-failure', '5xx'] });
    expect(c?.healthCheck).toEqual({ kind: 'http', path: '/healthz' });
    expect(c?.clientSideWeightedRoundRobin).toEqual({ blackoutPeriodMs: 0, errorUtilizationPenalty: 2 });
    expect(parsed({ lbPolicy: 'CLIENT_SIDE_WEIGHTED_ROUND_ROBIN' })?.clientSideWeightedRoundRobin).toEqual({});
    const plain = parsed({});
    expect(plain?.outlierDetection).toBeUndefined();
    expect(plain?.retryPolicy).toBeUndefined();
    expect(plain?.healthCheck).toBeUndefined();
  });

  it('applies the faster probe defaults', () => {
    expect(parsed({ probe: { kind: 'tcp' } })?.probe).toEqual({ kind: 'tcp', path: '', intervalMs: 2_000, timeoutMs: 1_000 });
  });

  it.each([
    [{ outlierDetection: { maxEjectionPercent: 101 } }, '/clusters/0/outlierDetection/maxEjectionPercent: Expected integer to be less or equal to 100'],
    [{ outlierDetection: { intervalMs: 0 } }, '/clusters/0/outlierDetection/intervalMs: Expected integer to be greater or equal to 1'],
    [{ outlierDetection: { failurePercentage: { threshold: -1 } } }, '/clusters/0/outlierDetection/failurePercentage/threshold: Expected integer to be greater or equal to 0'],
    [{ outlierDetection: { consecutive5xx: 2.5 } }, '/clusters/0/outlierDetection/consecutive5xx: Expected integer'],
    [{ outlierDetection: { baseEjectionTimeMs: 20_000, maxEjectionTimeMs: 10_000 } }, '/clusters/0/outlierDetection/maxEjectionTimeMs: must not be less than baseEjectionTimeMs'],
    [{ outlierDetection: { ejectEverything: true } }, '/clusters/0/outlierDetection/ejectEverything: Unexpected property'],
    [{ retryPolicy: { numRetries: 11 } }, '/clusters/0/retryPolicy/numRetries: Expected integer to be less or equal to 10'],
    [{ retryPolicy: { budgetPercent: 120 } }, '/clusters/0/retryPolicy/budgetPercent: Expected number to be less or equal to 100'],
    [{ retryPolicy: { perTryTimeoutMs: 0 } }, '/clusters/0/retryPolicy/perTryTimeoutMs: Expected integer to be greater or equal to 1'],
    [{ retryPolicy: { retriableStatusCodes: [99] } }, '/clusters/0/retryPolicy/retriableStatusCodes/0: Expected integer to be greater or equal to 100'],
    [{ retryPolicy: { retryOn: ['5xx'], retriableStatusCodes: [502] } }, "/clusters/0/retryPolicy/retriableStatusCodes: only used when retryOn includes 'retriable-status-codes'"],
    [{ retryPolicy: { backOff: { baseIntervalMs: 100, maxIntervalMs: 50 } } }, '/clusters/0/retryPolicy/backOff/maxIntervalMs: must not be less than baseIntervalMs'],
    [{ healthCheck: { kind: 'grpc' } }, '/clusters/0/healthCheck/kind: gRPC health checks need an HTTP/2 cluster (http2: true)'],
    [{ healthCheck: { kind: 'tcp', path: '/x' } }, '/clusters/0/healthCheck/path: only valid with kind http or grpc'],
    [{ healthCheck: { kind: 'http', path: 'healthz' } }, "/clusters/0/healthCheck/path: an HTTP path starts with '/'"],
    [{ healthCheck: { kind: 'http', timeoutMs: 0 } }, '/clusters/0/healthCheck/timeoutMs: Expected integer to be greater or equal to 1'],
    [{ healthCheck: { path: '/' } }, '/clusters/0/healthCheck/kind: Expected required property'],
    [{ clientSideWeightedRoundRobin: {} }, '/clusters/0/clientSideWeightedRoundRobin: only valid with lbPolicy CLIENT_SIDE_WEIGHTED_ROUND_ROBIN (is ROUND_ROBIN)'],
    [{ lbPolicy: 'CLIENT_SIDE_WEIGHTED_ROUND_ROBIN', clientSideWeightedRoundRobin: { errorUtilizationPenalty: -1 } }, '/clusters/0/clientSideWeightedRoundRobin/errorUtilizationPenalty: Expected number to be greater or equal to 0'],
    [{ lbPolicy: 'CLIENT_SIDE_WEIGHTED_ROUND_ROBIN', weighting: { policy: 'pid' } }, "/clusters/0/weighting/policy: CLIENT_SIDE_WEIGHTED_ROUND_ROBIN weighs hosts in Envoy; fulcrum's weighting must be static (is pid)"],
    [{ lbPolicy: 'CLIENT_SIDE_WEIGHTED_ROUND_ROBIN', localityWeighted: true }, '/clusters/0/localityWeighted: not supported with lbPolicy CLIENT_SIDE_WEIGHTED_ROUND_ROBIN'],
  ])('refuses %j', (extra, problem) => {
    expect(problemsOf(extra)).toContain(problem);
  });

  it('names the allowed values of an enum', () => {
    expect(problemsOf({ retryOn: undefined, retryPolicy: { retryOn: ['5xx', 'sometimes'] } })).toContain(
      `/clusters/0/retryPolicy/retryOn/1: must be one of 5xx, gateway-error, reset, reset-before-request, connect-failure, envoy-ratelimited, retriable-4xx, refused-stream, retriable-status-codes, retriable-headers, http3-post-connect-failure, cancelled, deadline-exceeded, internal, resource-exhausted, unavailable`,
    );
    expect(problemsOf({ lbPolicy: 'FASTEST' })).toContain(
      '/clusters/0/lbPolicy: must be one of ROUND_ROBIN, LEAST_REQUEST, RING_HASH, MAGLEV, RANDOM, CLIENT_SIDE_WEIGHTED_ROUND_ROBIN',
    );
    expect(problemsOf({ healthCheck: { kind: 'udp' } })).toContain('/clusters/0/healthCheck/kind: must be one of http, tcp, grpc');
  });
});
