/**
 * A proxyless gRPC client (the real `@grpc/grpc-js-xds`) run as a child process, because
 * grpc-js-xds reads its bootstrap once per process and keeps a process-wide xDS client.
 *
 *   node --import tsx test/support/grpc-xds-client.ts --xds-port 18000 [--node-id ID] [--node-cluster C]
 *
 * Bootstrap: GRPC_XDS_BOOTSTRAP / GRPC_XDS_BOOTSTRAP_CONFIG if already set, otherwise one
 * pointing at 127.0.0.1:<--xds-port> (insecure unless FULCRUM_TEST_XDS_CHANNEL_CREDS, xds_v3) is put
 * into GRPC_XDS_BOOTSTRAP_CONFIG.
 *
 * Two modes:
 *  - one-shot: add `--target xds:///greeter --count 10 [--header x-user=alice]`; prints one
 *    JSON line `{ results: [...] }` and exits.
 *  - server (default): prints `{"ready":true}`, then reads JSON lines from stdin
 *    (`ClientCommand`) and answers each with one JSON line (`ClientReply`). Channels are
 *    kept per target, so later commands observe xDS updates on the same channel.
 * Set GRPC_TRACE=xds_client,xds_resolver GRPC_VERBOSITY=DEBUG to see the xDS exchange on stderr.
 */
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { WhoAmIClient, type WhoAmIResponse } from './grpc-whoami.js';

export interface ClientCommand {
  readonly id: number;
  /** e.g. `xds:///greeter` */
  readonly target: string;
  /** Number of calls (each with `metadata`), unless `perCall` is given. */
  readonly count?: number;
  readonly metadata?: Record<string, string>;
  /** One entry per call: that call's metadata (overrides `count`/`metadata`). */
  readonly perCall?: readonly Record<string, string>[];
  /** Calls in flight at once (default 1: sequential). */
  readonly concurrency?: number;
  /** Per-call deadline (default 10 000 ms). */
  readonly deadlineMs?: number;
  /** Reply with the channel's connectivity state instead of making calls. */
  readonly state?: boolean;
}

export interface CallResult {
  /** Id of the server that answered, when the call succeeded. */
  readonly server?: string;
  /** gRPC status code and details, when it failed. */
  readonly code?: number;
  readonly error?: string;
  /** What the server saw of the interesting request headers. */
  readonly seen?: Record<string, string>;
}

export interface ClientReply {
  readonly id: number;
  readonly results?: CallResult[];
  readonly state?: string;
  readonly error?: string;
}

const { values } = parseArgs({
  options: {
    'xds-port': { type: 'string' },
    'node-id': { type: 'string', default: `proxyless-${process.pid}` },
    'node-cluster': { type: 'string', default: 'proxyless' },
    target: { type: 'string' },
    count: { type: 'string' },
    header: { type: 'string', multiple: true },
  },
});

/** FULCRUM_TEST_XDS_CHANNEL_CREDS (JSON), set by grpc-xds.ts for TLS tests; else insecure. */
function channelCreds(): unknown {
  const given = process.env.FULCRUM_TEST_XDS_CHANNEL_CREDS;
  return given ? (JSON.parse(given) as unknown) : [{ type: 'insecure' }];
}

if (process.env.GRPC_XDS_BOOTSTRAP === undefined && process.env.GRPC_XDS_BOOTSTRAP_CONFIG === undefined) {
  if (values['xds-port'] === undefined) {
    process.stderr.write('grpc-xds-client: need --xds-port or GRPC_XDS_BOOTSTRAP(_CONFIG)\n');
    process.exit(2);
  }
  process.env.GRPC_XDS_BOOTSTRAP_CONFIG = JSON.stringify({
    xds_servers: [
      { server_uri: `127.0.0.1:${values['xds-port']}`, channel_creds: channelCreds(), server_features: ['xds_v3'] },
    ],
    // grpc-js-xds 1.14 rejects a bootstrap whose node has no `locality` ("locality field missing in node element").
    node: { id: values['node-id'], cluster: values['node-cluster'], locality: {} },
  });
}

// Imported after the environment is in place (the bootstrap is read lazily, but be safe).
const xds = await import('@grpc/grpc-js-xds');
xds.register();

const clients = new Map<string, grpc.Client>();
function clientFor(target: string): grpc.Client {
  let client = clients.get(target);
  if (!client) {
    client = new WhoAmIClient(target, grpc.credentials.createInsecure());
    clients.set(target, client);
  }
  return client;
}

type WhoAmI = (
  request: { tag?: string },
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: (err: grpc.ServiceError | null, value?: WhoAmIResponse) => void,
) => grpc.ClientUnaryCall;

function callOnce(client: grpc.Client, tag: string, headers: Record<string, string>, deadlineMs: number): Promise<CallResult> {
  const metadata = new grpc.Metadata();
  for (const [k, v] of Object.entries(headers)) metadata.set(k, v);
  const whoAmI = (client as unknown as { whoAmI: WhoAmI }).whoAmI.bind(client);
  return new Promise((resolve) => {
    whoAmI({ tag }, metadata, { deadline: Date.now() + deadlineMs }, (err, value) => {
      if (err) resolve({ code: err.code, error: err.details || err.message });
      else resolve({ server: value?.server ?? '?', ...(value?.seen ? { seen: value.seen } : {}) });
    });
  });
}

async function run(cmd: ClientCommand): Promise<ClientReply> {
  const client = clientFor(cmd.target);
  if (cmd.state) {
    const state = client.getChannel().getConnectivityState(false);
    return { id: cmd.id, state: grpc.connectivityState[state] ?? String(state) };
  }
  const calls = cmd.perCall ?? Array.from({ length: cmd.count ?? 1 }, () => cmd.metadata ?? {});
  const results: CallResult[] = new Array<CallResult>(calls.length);
  const deadlineMs = cmd.deadlineMs ?? 10_000;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < calls.length) {
      const i = next++;
      results[i] = await callOnce(client, `${cmd.id}/${i}`, calls[i] ?? {}, deadlineMs);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(cmd.concurrency ?? 1, calls.length)) }, worker));
  return { id: cmd.id, results };
}

const write = (line: unknown): void => {
  process.stdout.write(`${JSON.stringify(line)}\n`);
};

if (values.target !== undefined) {
  const headers: Record<string, string> = {};
  for (const h of values.header ?? []) {
    const eq = h.indexOf('=');
    if (eq > 0) headers[h.slice(0, eq)] = h.slice(eq + 1);
  }
  const reply = await run({ id: 0, target: values.target, count: Number(values.count ?? '1'), metadata: headers });
  write({ results: reply.results });
  for (const c of clients.values()) c.close();
  process.exit(0);
} else {
  const lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    if (line.trim() === '') return;
    let cmd: ClientCommand;
    try {
      cmd = JSON.parse(line) as ClientCommand;
    } catch (err) {
      write({ id: -1, error: `bad command: ${(err as Error).message}` });
      return;
    }
    run(cmd).then(write, (err: unknown) => write({ id: cmd.id, error: String(err) }));
  });
  // The test closes stdin to stop us.
  lines.on('close', () => {
    for (const c of clients.values()) c.close();
    process.exit(0);
  });
  write({ ready: true });
}
