import type * as grpc from '@grpc/grpc-js';
import { envoyType } from './envoy-api.js';
import { compileNodeMatchers, MatcherError, type NodeMatcherSpec, type Warn } from './node-matchers.js';
import { resourceSyncState, type ProxyRegistry, type ProxyRecord, type SyncState } from './proxy-status.js';

/**
 * ClientStatusDiscoveryService: per connected proxy and per resource, the version sent, whether
 * the proxy ACKed or NACKed it, and the NACK's error text (only on the resources the NACK refused,
 * when it says which).
 */

const CONFIG_STATUS: Record<SyncState, string> = { SYNCED: 'SYNCED', STALE: 'STALE', NACKED: 'ERROR', NOT_SENT: 'NOT_SENT' };
const CLIENT_STATUS: Record<SyncState, string> = { SYNCED: 'ACKED', STALE: 'REQUESTED', NACKED: 'NACKED', NOT_SENT: 'UNKNOWN' };

function timestamp(ms: number): { seconds: number; nanos: number } {
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 };
}

function clientConfig(r: ProxyRecord): Record<string, unknown> {
  const generic: Record<string, unknown>[] = [];
  for (const [typeUrl, t] of r.types) {
    for (const [name, version] of t.sentResources) {
      const state = resourceSyncState(t, name);
      generic.push({
        type_url: typeUrl,
        name,
        // csds.proto: the version_info of the last response. A SotW response has one for all it
        // carries (what the proxy's own config dump shows; the NACK's error_state uses it too);
        // Delta has none a client uses, so there it is the resource's own version.
        version_info: r.protocol === 'sotw' ? (t.sentVersion ?? version) : version,
        ...(t.sentAt !== undefined ? { last_updated: timestamp(t.ackedAt ?? t.sentAt) } : {}),
        config_status: CONFIG_STATUS[state],
        client_status: CLIENT_STATUS[state],
        ...(state === 'NACKED' && t.lastNack
          ? { error_state: { details: t.lastNack.message, version_info: t.lastNack.version, last_update_attempt: timestamp(t.lastNack.at) } }
          : {}),
      });
    }
  }
  return {
    node: { id: r.node.id, cluster: r.node.cluster },
    generic_xds_configs: generic,
    client_scope: `${r.protocol}:${r.service}:${r.streamId}`,
  };
}

interface ClientStatusRequest {
  node_matchers?: NodeMatcherSpec[];
}

/** Throws a MatcherError for a matcher that cannot be honoured (see node-matchers.ts). */
export function encodeClientStatus(registry: ProxyRegistry, req: ClientStatusRequest, warn?: Warn): Buffer {
  const type = envoyType('envoy.service.status.v3.ClientStatusResponse');
  const selects = compileNodeMatchers(req.node_matchers, warn);
  const config = registry.list().filter((r) => selects(r.node)).map(clientConfig);
  return Buffer.from(type.encode(type.fromObject({ config })).finish());
}

/** The response, or the gRPC status a refused matcher ends the call with. */
function answer(registry: ProxyRegistry, req: ClientStatusRequest, warn: Warn | undefined): { response: Buffer } | { status: { code: number; details: string } } {
  try {
    return { response: encodeClientStatus(registry, req, warn) };
  } catch (err) {
    if (err instanceof MatcherError) return { status: { code: err.code, details: err.message } };
    throw err;
  }
}

function decodeRequest(b: Buffer): ClientStatusRequest {
  const type = envoyType('envoy.service.status.v3.ClientStatusRequest');
  return type.toObject(type.decode(b), { defaults: false }) as ClientStatusRequest;
}

const identity = (b: Buffer): Buffer => b;
const unsupported = (): never => {
  throw new Error('client-side serialization is not used');
};
const base = '/envoy.service.status.v3.ClientStatusDiscoveryService';

export const CSDS_DEFINITION: grpc.ServiceDefinition = {
  StreamClientStatus: {
    path: `${base}/StreamClientStatus`, requestStream: true, responseStream: true,
    requestSerialize: unsupported, requestDeserialize: decodeRequest, responseSerialize: identity, responseDeserialize: identity,
  },
  FetchClientStatus: {
    path: `${base}/FetchClientStatus`, requestStream: false, responseStream: false,
    requestSerialize: unsupported, requestDeserialize: decodeRequest, responseSerialize: identity, responseDeserialize: identity,
  },
};

/** `warn`: where the matchers' one-time warnings go (the server's logger); Node's warnings without it. */
export function csdsHandlers(registry: ProxyRegistry, warn?: Warn): grpc.UntypedServiceImplementation {
  return {
    StreamClientStatus: (call: grpc.ServerDuplexStream<ClientStatusRequest, Buffer>) => {
      call.on('data', (req: ClientStatusRequest) => {
        const a = answer(registry, req, warn);
        if ('response' in a) call.write(a.response);
        else call.emit('error', a.status);
      });
      call.on('end', () => call.end());
      call.on('error', () => undefined);
    },
    FetchClientStatus: (call: grpc.ServerUnaryCall<ClientStatusRequest, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      const a = answer(registry, call.request, warn);
      if ('response' in a) cb(null, a.response);
      else cb(a.status);
    },
  };
}
