#!/usr/bin/env node
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { realpathSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parseConfig } from './sources/config-file.js';
import { ConfigWatcher } from './sources/config-watcher.js';
import { createLogger, type Logger } from './telemetry/logger.js';
import { XdsCache } from './xds/cache.js';
import { envoyRoot } from './xds/envoy-api.js';
import { ProxyRegistry } from './xds/proxy-status.js';
import { Publisher } from './xds/publisher.js';
import { XdsServer } from './xds/server.js';

/** The composition root: reads the config, builds each room, wires them, starts and stops them. */

export interface FulcrumOptions {
  readonly configPath: string;
  /** Overrides the config file's xDS port (0 picks a free one). */
  readonly xdsPort?: number;
  readonly xdsAddress?: string;
  readonly logger?: Logger;
  readonly debounce?: { quietMs: number; maxMs: number };
}

export interface Fulcrum {
  readonly xdsPort: number;
  readonly registry: ProxyRegistry;
  readonly cache: XdsCache;
  readonly log: Logger;
  stop(): Promise<void>;
}

export async function startFulcrum(options: FulcrumOptions): Promise<Fulcrum> {
  envoyRoot();
  const versionPrefix = `${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
  const cache = new XdsCache(versionPrefix);
  const initial = parseConfig(await readFile(options.configPath, 'utf8'), options.configPath);
  const log = options.logger ?? createLogger(initial.server.logLevel);
  const settings = initial.server.xds;
  const registry = new ProxyRegistry();
  const publisher = new Publisher(cache, log, options.debounce ?? { quietMs: settings.debounceQuietMs, maxMs: settings.debounceMaxMs });
  const watcher = new ConfigWatcher(options.configPath, {
    onConfig: (config) => {
      log.info({ file: options.configPath, clusters: config.catalog.clusters.length, listeners: config.catalog.listeners.length }, 'config reloaded');
      publisher.setCatalog(config.catalog);
    },
    onInvalid: (err) => log.error({ file: options.configPath, error: err.message }, 'config edit rejected; serving the last good config'),
  });
  // The watcher re-reads the file, so an edit made since the first read is not lost.
  publisher.setCatalog((await watcher.start()).catalog);
  publisher.publishNow();

  const server = new XdsServer(
    {
      address: options.xdsAddress ?? settings.address,
      port: options.xdsPort ?? settings.port,
      maxMessageBytes: settings.maxMessageBytes,
      keepaliveTimeMs: settings.keepaliveTimeMs,
      keepaliveTimeoutMs: settings.keepaliveTimeoutMs,
      maxResourceNames: settings.maxResourceNames,
      controlPlaneId: `fulcrum@${hostname()}/${process.pid}`,
    },
    cache,
    registry,
    log,
  );
  const xdsPort = await server.start();
  return {
    xdsPort,
    registry,
    cache,
    log,
    async stop() {
      watcher.stop();
      publisher.stop();
      await server.stop();
      log.info('stopped');
    },
  };
}

async function cli(): Promise<void> {
  const { values } = parseArgs({
    options: {
      config: { type: 'string', short: 'c', default: 'fulcrum.yaml' },
      'xds-port': { type: 'string' },
      'xds-address': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write('usage: fulcrum --config fulcrum.yaml [--xds-port N] [--xds-address ADDR]\n');
    return;
  }
  let fulcrum: Fulcrum;
  try {
    fulcrum = await startFulcrum({
      configPath: values.config,
      ...(values['xds-port'] !== undefined ? { xdsPort: Number(values['xds-port']) } : {}),
      ...(values['xds-address'] !== undefined ? { xdsAddress: values['xds-address'] } : {}),
    });
  } catch (err) {
    process.stderr.write(`fulcrum: ${(err as Error).message}\n`);
    process.exit(1);
  }
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    fulcrum.log.info({ signal }, 'shutting down');
    void fulcrum.stop().then(() => process.exit(0));
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

const entry = process.argv[1];
if (entry && realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url))) void cli();
