/**
 * A gRPC service under test on 127.0.0.1 at a kernel-chosen port, without TLS, and a generic
 * client of it (the tests call raw method paths, with their own codecs).
 */
import * as grpc from '@grpc/grpc-js';

export interface GrpcService {
  readonly definition: grpc.ServiceDefinition;
  readonly implementation: grpc.UntypedServiceImplementation;
}

export interface LocalGrpc {
  readonly server: grpc.Server;
  readonly client: grpc.Client;
  /** Closes the client and shuts the server down at once (no draining: the test is over). */
  close(): void;
}

/** Binds `server` on 127.0.0.1 at a free port; resolves to the port. */
export function bindLocal(server: grpc.Server): Promise<number> {
  return new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
}

/** A client of 127.0.0.1:`port`, without TLS. */
export function localClient(port: number): grpc.Client {
  return new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
}

/** `service` alone on a new server (or the one given, for its options), bound locally, and a client of it. */
export async function serveLocal(service: GrpcService, server = new grpc.Server()): Promise<LocalGrpc> {
  server.addService(service.definition, service.implementation);
  const client = localClient(await bindLocal(server));
  return {
    server,
    client,
    close: () => {
      client.close();
      server.forceShutdown();
    },
  };
}
