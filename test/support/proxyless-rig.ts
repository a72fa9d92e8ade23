/**
 * A proxyless-gRPC rig: WhoAmI gRPC servers, fulcrum (in process) on a config file written from
 * them, one @grpc/grpc-js-xds client process pointed at fulcrum, and one teardown for all of it.
 *
 *   const rig = await startProxylessRig({ name: 'feature', servers: 3, config: (list) => ({ clusters: [...], listeners: [...] }) });
 *   await rig.client.call('xds:///listener', { count: 10 });
 *   await rig.stop();
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import YAML from 'yaml';
import { startFulcrum, type Fulcrum } from '../../src/main.js';
import { startGrpcServers, type GrpcTestServer, type GrpcTestServers } from './grpc-whoami.js';
import { startXdsClient, type XdsClientHandle } from './grpc-xds.js';
import { replaceFile } from './replace-file.js';

export interface ProxylessRigOptions {
  /** Names the temporary directory, the servers (`<name>-0`, ...) and the client's node id. */
  readonly name: string;
  readonly servers: number;
  /** The config file's document for these servers. */
  readonly config: (servers: readonly GrpcTestServer[]) => Record<string, unknown>;
}

export interface ProxylessRig {
  readonly servers: GrpcTestServers;
  readonly fulcrum: Fulcrum;
  readonly client: XdsClientHandle;
  readonly nodeId: string;
  /** Replaces the config file (fulcrum applies the edit live). */
  writeConfig(doc: Record<string, unknown>): Promise<void>;
  stop(): Promise<void>;
}

export async function startProxylessRig(opts: ProxylessRigOptions): Promise<ProxylessRig> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `fulcrum-${opts.name}-`));
  const configPath = path.join(dir, 'fulcrum.yaml');
  const writeConfig = (doc: Record<string, unknown>): Promise<void> => replaceFile(configPath, YAML.stringify(doc));
  const nodeId = `${opts.name}-${process.pid}`;
  const stops: (() => Promise<unknown>)[] = [() => rm(dir, { recursive: true, force: true })];
  const stop = async (): Promise<void> => {
    for (const s of stops.splice(0).reverse()) await s();
  };
  try {
    const servers = await startGrpcServers(opts.servers, opts.name);
    stops.push(() => servers.close());
    await writeConfig(opts.config(servers.list));
    const fulcrum = await startFulcrum({ configPath, xdsPort: 0, xdsAddress: '127.0.0.1', logger: pino({ level: 'silent' }) });
    stops.push(() => fulcrum.stop());
    const client = await startXdsClient({ xdsPort: fulcrum.xdsPort, nodeId });
    stops.push(() => client.stop());
    return { servers, fulcrum, client, nodeId, writeConfig, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
