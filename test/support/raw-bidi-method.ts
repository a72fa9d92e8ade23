import type * as grpc from '@grpc/grpc-js';

/** A bidi method whose responses are raw bytes, as the discovery services' are (src/xds/services.ts). */
export function rawBidiMethod(path: string): grpc.MethodDefinition<Buffer, readonly Uint8Array[]> {
  return {
    path,
    requestStream: true,
    responseStream: true,
    requestSerialize: (b: Buffer) => b,
    requestDeserialize: (b: Buffer) => b,
    responseSerialize: (parts: readonly Uint8Array[]) => Buffer.concat(parts),
    responseDeserialize: (b: Buffer) => [b],
  };
}
