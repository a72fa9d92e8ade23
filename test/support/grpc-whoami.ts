/**
 * A tiny gRPC service for proxyless-gRPC tests, defined without .proto files:
 * one unary method `WhoAmI` whose request and response are JSON. Each test
 * server answers with its own id, so the client can tell which backend served a call, after the
 * milliseconds the call's `x-delay-ms` header asks for, if any.
 * Everything listens on 127.0.0.1 only.
 */
import * as grpc from '@grpc/grpc-js';

export interface WhoAmIRequest {
  /** Free-form tag echoed back (handy in traces). */
  readonly tag?: string;
}

export interface WhoAmIResponse {
  /** The id of the server that answered. */
  readonly server: string;
  readonly tag?: string;
  /** Request metadata the server saw for the headers the caller asked about (e.g. x-user). */
  readonly seen?: Record<string, string>;
}

const json = <T>() => ({
  serialize: (value: T): Buffer => Buffer.from(JSON.stringify(value)),
  deserialize: (bytes: Buffer): T => JSON.parse(bytes.toString('utf8')) as T,
});

const request = json<WhoAmIRequest>();
const response = json<WhoAmIResponse>();

export const WHOAMI_PATH = '/fulcrum.test.WhoAmI/WhoAmI';

export const whoAmIService = {
  whoAmI: {
    path: WHOAMI_PATH,
    requestStream: false,
    responseStream: false,
    requestSerialize: request.serialize,
    requestDeserialize: request.deserialize,
    responseSerialize: response.serialize,
    responseDeserialize: response.deserialize,
  },
} satisfies grpc.ServiceDefinition;

export const WhoAmIClient = grpc.makeGenericClientConstructor(whoAmIService, 'WhoAmI');

export interface GrpcTestServer {
  readonly id: string;
  readonly host: '127.0.0.1';
  readonly port: number;
  /** Calls answered since start or the last reset. */
  readonly count: number;
}

export interface GrpcTestServers {
  readonly list: readonly GrpcTestServer[];
  /** Calls answered, by server id. */
  counts(): Record<string, number>;
  /** From now on server `index` fails every call at once with UNAVAILABLE (`false`: answers again). */
  fail(index: number, failing: boolean): void;
  /** From now on server `index` reports this CPU utilization on every answer (ORCA, `endpoint-load-metrics-bin`; started with `orca`); undefined: none. */
  reportCpu(index: number, cpu: number | undefined): void;
  reset(): void;
  close(): Promise<void>;
}

/**
 * Start `n` gRPC servers on 127.0.0.1 (kernel-chosen ports) with ids `${prefix}-0` … `${prefix}-(n-1)`.
 * `orca`: per-call load reports on (grpc-js sends the trailer only then), for reportCpu.
 */
export async function startGrpcServers(n: number, prefix = 'server', options: { readonly orca?: boolean } = {}): Promise<GrpcTestServers> {
  const servers: grpc.Server[] = [];
  const list: GrpcTestServer[] = [];
  const counts = new Map<string, number>();
  const failing = new Set<string>();
  const cpu = new Map<string, number>();
  try {
    for (let i = 0; i < n; i++) {
      const id = `${prefix}-${i}`;
      counts.set(id, 0);
      const server = new grpc.Server(options.orca === true ? { 'grpc.server_call_metric_recording': 1 } : {});
      server.addService(whoAmIService, {
        whoAmI: (
          call: grpc.ServerUnaryCall<WhoAmIRequest, WhoAmIResponse>,
          callback: grpc.sendUnaryData<WhoAmIResponse>,
        ) => {
          counts.set(id, (counts.get(id) ?? 0) + 1);
          if (failing.has(id)) return callback({ code: grpc.status.UNAVAILABLE, details: `${id} is failing` });
          const reported = cpu.get(id);
          if (reported !== undefined) call.getMetricsRecorder().recordCPUUtilizationMetric(reported);
          const seen: Record<string, string> = {};
          const user = call.metadata.get('x-user')[0];
          if (user !== undefined) seen['x-user'] = String(user);
          const answer = () => callback(null, { server: id, ...(call.request.tag !== undefined ? { tag: call.request.tag } : {}), seen });
          // x-delay-ms: answer that much later (a slow backend, for timeout tests).
          const delayMs = Number(call.metadata.get('x-delay-ms')[0] ?? 0);
          if (delayMs > 0) setTimeout(answer, delayMs);
          else answer();
        },
      });
      servers.push(server);
      const port = await new Promise<number>((resolve, reject) =>
        server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
      );
      list.push({
        id,
        host: '127.0.0.1',
        port,
        get count() {
          return counts.get(id) ?? 0;
        },
      });
    }
  } catch (err) {
    await Promise.all(servers.map(shutdown));
    throw err;
  }
  return {
    list,
    counts: () => Object.fromEntries(counts),
    reportCpu: (index, value) => {
      const id = list[index]?.id ?? '?';
      if (value === undefined) cpu.delete(id);
      else cpu.set(id, value);
    },
    fail: (index, on) => {
      const id = list[index]?.id ?? '?';
      if (on) failing.add(id);
      else failing.delete(id);
    },
    reset: () => {
      for (const id of counts.keys()) counts.set(id, 0);
    },
    close: () => Promise.all(servers.map(shutdown)).then(() => undefined),
  };
}

function shutdown(server: grpc.Server): Promise<void> {
  return new Promise((resolve) => {
    // forceShutdown drops open HTTP/2 sessions at once; tryShutdown would wait for idle clients.
    server.forceShutdown();
    resolve();
  });
}
