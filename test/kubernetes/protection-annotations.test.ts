import { describe, expect, test } from 'vitest';
import { slicesToClusters, type ServiceLike } from '../../src/sources/kubernetes.js';

/** Service annotations → a cluster's Envoy-side protection (and client-side WRR). */

const service = (annotations: Record<string, string>, appProtocol?: string): ServiceLike => ({
  metadata: { name: 'api', namespace: 'shop', labels: { 'fulcrum.io/balance': 'true' }, annotations },
  spec: { ports: [{ name: 'http', port: 80, ...(appProtocol ? { appProtocol } : {}) }] },
});

function mapped(annotations: Record<string, string>, appProtocol?: string) {
  const out = slicesToClusters([service(annotations, appProtocol)], []);
  const cluster = out.clusters[0];
  if (!cluster) throw new Error('no cluster');
  return { cluster, warnings: out.warnings };
}

describe('protection annotations', () => {
  test('no annotation: nothing stored, so the defaults (outlier detection and retries on) apply', () => {
    const { cluster, warnings } = mapped({});
    expect(cluster.outlierDetection).toBeUndefined();
    expect(cluster.retryPolicy).toBeUndefined();
    expect(cluster.healthCheck).toBeUndefined();
    expect(warnings).toEqual([]);
  });

  test('turn protection off, set retries and conditions, ask for health checks', () => {
    const { cluster, warnings } = mapped({
      'fulcrum.io/outlier-detection': 'Off',
      'fulcrum.io/retries': '0',
      'fulcrum.io/retry-on': 'connect-failure, 5xx',
      'fulcrum.io/health-check': 'http:/healthz',
    });
    expect(cluster.outlierDetection).toEqual({ enabled: false });
    expect(cluster.retryPolicy).toEqual({ numRetries: 0, retryOn: ['connect-failure', '5xx'] });
    expect(cluster.healthCheck).toEqual({ kind: 'http', path: '/healthz' });
    expect(warnings).toEqual([]);
    expect(mapped({ 'fulcrum.io/health-check': 'tcp' }).cluster.healthCheck).toEqual({ kind: 'tcp' });
    expect(mapped({ 'fulcrum.io/health-check': 'grpc:pkg.Svc' }, 'grpc').cluster.healthCheck).toEqual({ kind: 'grpc', path: 'pkg.Svc' });
  });

  test.each([
    [{ 'fulcrum.io/outlier-detection': 'maybe' }, 'fulcrum.io/outlier-detection="maybe" is not on or off; using on'],
    [{ 'fulcrum.io/retries': '11' }, 'fulcrum.io/retries="11" is not a whole number from 0 to 10; using the default'],
    [{ 'fulcrum.io/retries': '-1' }, 'fulcrum.io/retries="-1" is not a whole number from 0 to 10; using the default'],
    [{ 'fulcrum.io/retry-on': 'connect-failure,sometimes' }, 'fulcrum.io/retry-on="connect-failure,sometimes" needs conditions from'],
    [{ 'fulcrum.io/health-check': 'grpc' }, 'fulcrum.io/health-check="grpc": gRPC health checks need an HTTP/2 port'],
    [{ 'fulcrum.io/health-check': 'http:healthz' }, 'fulcrum.io/health-check="http:healthz": expected off, tcp, http[:/path] or grpc[:service]'],
    // Envoy NACKs a control character in an HTTP health check path (its HTTP_HEADER_VALUE rule).
    [{ 'fulcrum.io/health-check': 'http:/health\u0001z' }, 'fulcrum.io/health-check="http:/health\\u0001z": expected off, tcp, http[:/path] or grpc[:service]'],
  ])('a bad value %j is a warning and keeps the default', (annotations, warning) => {
    const { cluster, warnings } = mapped(annotations);
    expect(warnings.join('\n')).toContain(`service shop/api: annotation ${warning}`);
    expect(cluster.outlierDetection).toBeUndefined();
    expect(cluster.retryPolicy).toBeUndefined();
    expect(cluster.healthCheck).toBeUndefined();
  });

  test('lb-policy CLIENT_SIDE_WEIGHTED_ROUND_ROBIN gets its settings block; an adaptive weighting is ignored with a warning', () => {
    const { cluster, warnings } = mapped({ 'fulcrum.io/lb-policy': 'client_side_weighted_round_robin', 'fulcrum.io/weighting': 'pid' });
    expect(cluster.lbPolicy).toBe('CLIENT_SIDE_WEIGHTED_ROUND_ROBIN');
    expect(cluster.clientSideWeightedRoundRobin).toEqual({});
    expect(cluster.weighting).toEqual({ kind: 'static' });
    expect(warnings).toEqual(['service shop/api: CLIENT_SIDE_WEIGHTED_ROUND_ROBIN weighs hosts in Envoy; annotation fulcrum.io/weighting ignored']);
  });
});
