import http2 from 'node:http2';
import net from 'node:net';
import protobuf from 'protobufjs';
import { envoyType } from '../../src/xds/envoy-api.js';

/**
 * A bare HTTP/2 gRPC client for hostile tests and the reconnect bench: it can bind a chosen
 * source address (127.0.0.x, so attackers are distinct peers from a real Envoy on 127.0.0.1),
 * keep streams it never reads, and send what a well-behaved client would not.
 */

export const ADS_PATH = '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources';
export const CDS_TYPE = 'type.googleapis.com/envoy.config.cluster.v3.Cluster';

/** A DiscoveryRequest's bytes. */
export function discoveryRequest(nodeId: string, typeUrl = CDS_TYPE, names: readonly string[] = []): Uint8Array {
  const Req = envoyType('envoy.service.discovery.v3.DiscoveryRequest');
  return Req.encode(Req.fromObject({ node: { id: nodeId, cluster: 'hostile' }, type_url: typeUrl, resource_names: names })).finish();
}

/** A DiscoveryRequest naming one resource of `bytes` bytes, written without building the string twice. */
export function hugeNameRequest(bytes: number): Buffer {
  const name = Buffer.alloc(bytes, 0x61);
  const w = protobuf.Writer.create();
  w.uint32(18).fork().uint32(10).string('huge-name').ldelim(); // node { id }
  w.uint32(26).uint32(bytes); // resource_names: tag, then the length; the bytes follow
  const head = Buffer.from(w.finish());
  const tail = Buffer.from(protobuf.Writer.create().uint32(34).string(CDS_TYPE).finish());
  return Buffer.concat([head, name, tail]);
}

/** One gRPC length-prefixed message. */
export function grpcFrame(message: Uint8Array): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(message.length, 1);
  return Buffer.concat([head, message]);
}

export function connectH2(port: number, localAddress = '127.0.0.1', host = '127.0.0.1'): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://${host}:${port}`, {
      createConnection: () => net.connect({ host, port, localAddress }),
    });
    session.once('connect', () => {
      session.off('error', reject);
      session.on('error', () => undefined);
      resolve(session);
    });
    session.once('error', reject);
  });
}

/** Opens a gRPC call; the caller writes frames and decides whether to read. */
export function openCall(session: http2.ClientHttp2Session, path = ADS_PATH): http2.ClientHttp2Stream {
  const stream = session.request({
    ':method': 'POST',
    ':path': path,
    'content-type': 'application/grpc',
    te: 'trailers',
  });
  stream.on('error', () => undefined);
  return stream;
}

export interface CallEnd {
  readonly status: number | undefined;
  readonly message: string;
  /** Response bytes received before the end. */
  readonly bytes: number;
  /** The HTTP/2 RST_STREAM code the stream closed with (0 when it ended normally). */
  readonly rstCode: number;
}

/** Reads a call to its end: gRPC status and message from the trailers (or a trailers-only response). */
export function callEnd(stream: http2.ClientHttp2Stream): Promise<CallEnd> {
  return new Promise((resolve) => {
    let bytes = 0;
    let status: number | undefined;
    let message = '';
    const done = (): void => resolve({ status, message, bytes, rstCode: stream.rstCode ?? 0 });
    // The status ends the call even while the client's own side is still open.
    const take = (h: http2.IncomingHttpHeaders): void => {
      if (h['grpc-status'] === undefined) return;
      status = Number(h['grpc-status']);
      if (typeof h['grpc-message'] === 'string') message = decodeURIComponent(h['grpc-message']);
      done();
    };
    stream.on('response', take);
    stream.on('trailers', take);
    stream.on('data', (d: Buffer) => (bytes += d.length));
    stream.on('close', done);
  });
}

/** Resolves with the first response bytes of a call (or undefined if it ends first). */
export function firstData(stream: http2.ClientHttp2Stream): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    stream.once('data', (d: Buffer) => resolve(d));
    stream.once('close', () => resolve(undefined));
  });
}
