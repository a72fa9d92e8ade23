/** Shared setup for the protocol tests: an in-process fulcrum on loopback, fed by a temp config file. */
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { afterEach } from 'vitest';
import { stringify } from 'yaml';
import { startFulcrum, type Fulcrum } from '../../src/main.js';
import { describeProxy, type ProxyRecord } from '../../src/xds/proxy-status.js';
import { waitFor } from '../support/wait.js';
import { XdsClient } from '../support/xds-client.js';

export interface EndpointCfg {
  address: string;
  port: number;
  weight?: number;
}

export interface ClusterCfg {
  name: string;
  lbPolicy?: string;
  endpoints?: EndpointCfg[];
}

export interface ListenerCfg {
  name: string;
  address?: string;
  port?: number;
  apiListener?: boolean;
  routes: { prefix?: string; domain?: string; cluster: string }[];
}

export interface ConfigDoc {
  server?: { xds?: Record<string, unknown>; logLevel?: string };
  clusters?: ClusterCfg[];
  listeners?: ListenerCfg[];
  nodeGroups?: { nodeCluster: string; listeners?: string[]; clusters?: string[] }[];
}

/** Two clusters, one listener routing to both. */
export function baseConfig(): ConfigDoc {
  return {
    clusters: [
      { name: 'api', lbPolicy: 'ROUND_ROBIN', endpoints: [{ address: '10.0.0.2', port: 8080 }] },
      { name: 'web', lbPolicy: 'ROUND_ROBIN', endpoints: [{ address: '10.0.0.1', port: 8080 }] },
    ],
    listeners: [
      {
        name: 'ingress',
        address: '127.0.0.1',
        port: 10000,
        routes: [
          { prefix: '/api', cluster: 'api' },
          { prefix: '/', cluster: 'web' },
        ],
      },
    ],
  };
}

export const NODE = { id: 'node-1', cluster: 'default', user_agent_name: 'protocol-test' } as const;

export interface Harness {
  readonly fulcrum: Fulcrum;
  readonly client: XdsClient;
  readonly configPath: string;
  /**
   * Writes a new config (atomically, by rename) and resolves once the cache has published it.
   * The edit must change some resource: the watcher skips identical text and the cache only
   * notifies on content changes, so a no-op edit would time out (and is refused up front).
   */
  apply(doc: ConfigDoc): Promise<void>;
  /** The registry's view of the one proxy with this node id (waits until it is connected). */
  proxy(nodeId?: string): Promise<Record<string, unknown> & { types: Record<string, { state: string; lastNack?: { message: string }; rejected?: string[] }> }>;
  records(): ProxyRecord[];
  /** A fresh channel to the same server (for "another client still works"). */
  newClient(): XdsClient;
  stop(): Promise<void>;
}

export async function startHarness(doc: ConfigDoc = baseConfig(), logger: Logger = pino({ level: 'silent' })): Promise<Harness> {
  const dir = await mkdtemp(join(tmpdir(), 'fulcrum-protocol-'));
  const configPath = join(dir, 'fulcrum.yaml');
  await writeFile(configPath, stringify(doc));
  const fulcrum = await startFulcrum({
    configPath,
    xdsPort: 0,
    xdsAddress: '127.0.0.1',
    logger,
    debounce: { quietMs: 0, maxMs: 0 },
  });
  const clients: XdsClient[] = [];
  const newClient = () => {
    const c = XdsClient.forPort(fulcrum.xdsPort);
    clients.push(c);
    return c;
  };
  const client = newClient();
  let seq = 0;
  let lastText = stringify(doc);
  return {
    fulcrum,
    client,
    configPath,
    newClient,
    records: () => fulcrum.registry.list(),
    async apply(next) {
      const text = stringify(next);
      if (text === lastText) throw new Error('apply(): the config is unchanged; nothing would be published');
      lastText = text;
      const published = new Promise<void>((resolve) => {
        const unsubscribe = fulcrum.cache.subscribe(() => {
          unsubscribe();
          resolve();
        });
      });
      const tmp = join(dir, `.next-${++seq}.yaml`);
      await writeFile(tmp, text);
      await rename(tmp, configPath);
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('config edit was not published within 5 s')), 5_000);
      });
      try {
        await Promise.race([published, timeout]);
      } finally {
        clearTimeout(timer);
      }
    },
    async proxy(nodeId = NODE.id) {
      const record = await waitFor(() => fulcrum.registry.list().find((r) => r.node.id === nodeId), {
        what: `proxy ${nodeId} to be registered`,
        timeoutMs: 5_000,
        intervalMs: 10,
      });
      return describeProxy(record) as Awaited<ReturnType<Harness['proxy']>>;
    },
    async stop() {
      for (const c of clients) c.close();
      await fulcrum.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Registers an afterEach that stops the harness a test started; returns the starter. */
export function harnessPerTest(): (doc?: ConfigDoc) => Promise<Harness> {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.stop();
    h = undefined;
  });
  return async (doc) => {
    h = await startHarness(doc);
    return h;
  };
}

/** A config with one more cluster (`name`) and, if `listener` is given, a listener routing to it. */
export function withCluster(doc: ConfigDoc, name: string, listener?: { name: string; port: number }): ConfigDoc {
  const next = structuredClone(doc);
  next.clusters = [...(next.clusters ?? []), { name, endpoints: [{ address: '10.0.9.9', port: 9090 }] }];
  if (listener) {
    next.listeners = [
      ...(next.listeners ?? []),
      { name: listener.name, address: '127.0.0.1', port: listener.port, routes: [{ prefix: '/', cluster: name }] },
    ];
  }
  return next;
}

export function edit(doc: ConfigDoc, fn: (d: ConfigDoc) => void): ConfigDoc {
  const next = structuredClone(doc);
  fn(next);
  return next;
}
