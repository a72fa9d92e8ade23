import type * as grpc from '@grpc/grpc-js';
import { TYPE, type XdsTypeUrl } from './envoy-api.js';
import { decodeDeltaDiscoveryRequest, decodeDiscoveryRequest, type DeltaDiscoveryRequest, type DiscoveryRequest } from './wire.js';

/**
 * gRPC method definitions for the discovery services, written by hand so responses can be
 * passed as pre-encoded bytes (the encode-once cache) instead of being re-serialized per stream.
 */

/** A response is handed over as parts (shared body + per-stream tail) and joined exactly once, here. */
export type ResponseParts = readonly Uint8Array[];
const join = (parts: ResponseParts): Buffer =>
  parts.length === 1 && parts[0] ? Buffer.from(parts[0].buffer, parts[0].byteOffset, parts[0].byteLength) : Buffer.concat(parts);
const asParts = (b: Buffer): ResponseParts => [b];
const unsupported = (): never => {
  throw new Error('client-side serialization is not used');
};

function bidi<Req>(path: string, decode: (b: Buffer) => Req): grpc.MethodDefinition<Req, ResponseParts> {
  return {
    path,
    requestStream: true,
    responseStream: true,
    requestSerialize: unsupported,
    requestDeserialize: decode,
    responseSerialize: join,
    responseDeserialize: asParts,
  };
}

function unary<Req>(path: string, decode: (b: Buffer) => Req): grpc.MethodDefinition<Req, ResponseParts> {
  return { ...bidi(path, decode), requestStream: false, responseStream: false };
}

export interface DiscoveryServiceShape {
  readonly name: string;
  /** undefined for ADS, which carries every type. */
  readonly type?: XdsTypeUrl;
  readonly definition: grpc.ServiceDefinition;
  readonly sotw: string;
  readonly delta: string;
  readonly fetch?: string;
}

function perType(pkg: string, service: string, noun: string, type: XdsTypeUrl): DiscoveryServiceShape {
  const base = `/${pkg}.${service}`;
  return {
    name: service,
    type,
    sotw: `Stream${noun}`,
    delta: `Delta${noun}`,
    fetch: `Fetch${noun}`,
    definition: {
      [`Stream${noun}`]: bidi<DiscoveryRequest>(`${base}/Stream${noun}`, decodeDiscoveryRequest),
      [`Delta${noun}`]: bidi<DeltaDiscoveryRequest>(`${base}/Delta${noun}`, decodeDeltaDiscoveryRequest),
      [`Fetch${noun}`]: unary<DiscoveryRequest>(`${base}/Fetch${noun}`, decodeDiscoveryRequest),
    },
  };
}

export const DISCOVERY_SERVICES: readonly DiscoveryServiceShape[] = [
  {
    name: 'AggregatedDiscoveryService',
    sotw: 'StreamAggregatedResources',
    delta: 'DeltaAggregatedResources',
    definition: {
      StreamAggregatedResources: bidi<DiscoveryRequest>(
        '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources',
        decodeDiscoveryRequest,
      ),
      DeltaAggregatedResources: bidi<DeltaDiscoveryRequest>(
        '/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources',
        decodeDeltaDiscoveryRequest,
      ),
    },
  },
  perType('envoy.service.cluster.v3', 'ClusterDiscoveryService', 'Clusters', TYPE.cluster),
  perType('envoy.service.endpoint.v3', 'EndpointDiscoveryService', 'Endpoints', TYPE.endpoint),
  perType('envoy.service.listener.v3', 'ListenerDiscoveryService', 'Listeners', TYPE.listener),
  perType('envoy.service.route.v3', 'RouteDiscoveryService', 'Routes', TYPE.route),
];
