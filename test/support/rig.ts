/**
 * One end-to-end rig: backends, fulcrum on a config file written from them, Envoy(s) bootstrapped
 * from the example ADS bootstrap and pointed at fulcrum, and one teardown for all of it.
 *
 *   describeEnvoy('my feature', () => {
 *     const rig = useRig(() => ({
 *       name: 'feature',
 *       backends: () => startBackends(2),
 *       config: ({ backends, listenerPort }) => ({ clusters: [...], listeners: [...] }),
 *       waitForListener: 'ingress',
 *     }));
 *     it('...', async () => { const r = rig(); await sendRequests(r.url, 100); ... });
 *   });
 *
 * `startRig` is the same without the vitest hooks, for a rig per test. Teardown runs in reverse:
 * what `onStop` registered (load generators, clients), the Envoys, fulcrum, the backends, then
 * the temporary directory (config file and durable store).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { replaceFile } from './replace-file.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll } from 'vitest';
import YAML from 'yaml';
import { startFulcrum, type Fulcrum, type FulcrumOptions } from '../../src/main.js';
import { dumpLogsOnFailure, startEnvoy, type EnvoyHandle, type StartEnvoyOptions } from './envoy.js';
import { freePort } from './ports.js';
import { scaled } from './timing.js';

export interface Closable {
  close(): Promise<void>;
}

export interface RigContext<B> {
  readonly backends: B;
  /** A free port reserved for the config's Envoy listener (`url` points at it). */
  readonly listenerPort: number;
  readonly dir: string;
}

export interface RigOptions<B extends Closable> {
  /** Names the temporary directory, the Envoy and (by default) its node id. */
  name: string;
  /** Starts the backends; the rig closes them. */
  backends: () => Promise<B>;
  /** fulcrum's config file (as data, written as YAML). */
  config: (ctx: RigContext<B>) => Record<string, unknown>;
  /** More startFulcrum options (auth, engineTickMs, ...); the rig sets configPath, ports and dataDir. */
  fulcrum?: Partial<Omit<FulcrumOptions, 'configPath'>>;
  /** The first Envoy (mode `sotw` and node id `name` unless given); `false` starts none. */
  envoy?: Partial<StartEnvoyOptions> | false;
  /** Resolve only once the first Envoy has bound this listener. */
  waitForListener?: string;
}

export interface Rig<B extends Closable> {
  readonly name: string;
  readonly dir: string;
  readonly configPath: string;
  readonly backends: B;
  /** The running fulcrum (a new one after `restartFulcrum`). */
  readonly fulcrum: Fulcrum;
  /** The first Envoy; throws if the rig was started with `envoy: false` and none was added. */
  readonly envoy: EnvoyHandle;
  readonly envoys: readonly EnvoyHandle[];
  readonly listenerPort: number;
  /** `http://127.0.0.1:<listenerPort>/` */
  readonly url: string;
  /** Replace the config file atomically (write, then rename), as editors and ConfigMap mounts do. */
  writeConfig(config: Record<string, unknown>): Promise<void>;
  /**
   * Stop fulcrum and start it again on the same xDS port and data directory; `whileDown` runs
   * (and is awaited) in between, e.g. to check that Envoy keeps serving on its last config.
   */
  restartFulcrum(whileDown?: () => Promise<unknown>): Promise<Fulcrum>;
  /** Start another Envoy against this fulcrum (stopped with the rig). */
  addEnvoy(opts?: Partial<StartEnvoyOptions>): Promise<EnvoyHandle>;
  /** Run `fn` first at teardown (later registrations first). */
  onStop(fn: () => Promise<void> | void): void;
  /** Tear everything down, in reverse order of starting. Idempotent. */
  stop(): Promise<void>;
}

/** Starts a rig; if any part fails to start, what did start is stopped before the error is thrown. */
export async function startRig<B extends Closable>(opts: RigOptions<B>): Promise<Rig<B>> {
  const parts = new RigParts<B>(opts);
  try {
    await parts.start();
    return parts.rig();
  } catch (err) {
    await parts.stop();
    throw err;
  }
}

/**
 * A rig for the enclosing describe block: started in `beforeAll`, stopped in `afterAll`, Envoy's
 * output printed when a test fails. Returns a getter, valid inside tests.
 */
export function useRig<B extends Closable>(options: () => RigOptions<B>, startTimeoutMs = 60_000): () => Rig<B> {
  let rig: Rig<B> | undefined;
  beforeAll(async () => {
    rig = await startRig(options());
  }, scaled(startTimeoutMs));
  afterAll(async () => {
    await rig?.stop();
  });
  dumpLogsOnFailure(() => rig?.envoys[0]);
  return () => {
    if (!rig) throw new Error('the rig is not started (did beforeAll fail?)');
    return rig;
  };
}

/** The parts of a rig and their order; `stop` undoes whatever `start` got to. */
class RigParts<B extends Closable> {
  dir: string | undefined;
  backends: B | undefined;
  fulcrum: Fulcrum | undefined;
  listenerPort = 0;
  readonly envoys: EnvoyHandle[] = [];
  private readonly stopHooks: Array<() => Promise<void> | void> = [];
  private stopping: Promise<void> | undefined;

  constructor(private readonly opts: RigOptions<B>) {}

  get configPath(): string {
    return join(this.need(this.dir, 'directory'), 'fulcrum.yaml');
  }

  async start(): Promise<void> {
    this.dir = await mkdtemp(join(tmpdir(), `fulcrum-${this.opts.name}-`));
    this.backends = await this.opts.backends();
    this.listenerPort = await freePort();
    await this.writeConfig(this.opts.config({ backends: this.backends, listenerPort: this.listenerPort, dir: this.dir }));
    this.fulcrum = await this.startFulcrum(0);
    if (this.opts.envoy !== false) {
      const envoy = await this.addEnvoy(this.opts.envoy ?? {});
      if (this.opts.waitForListener !== undefined) await envoy.waitForListener(this.opts.waitForListener, 20_000);
    }
  }

  writeConfig(config: Record<string, unknown>): Promise<void> {
    return replaceFile(this.configPath, YAML.stringify(config));
  }

  startFulcrum(xdsPort: number): Promise<Fulcrum> {
    return startFulcrum({
      xdsAddress: '127.0.0.1',
      logger: pino({ level: process.env.FULCRUM_TEST_LOG ?? 'silent' }),
      debounce: { quietMs: 20, maxMs: 200 },
      dataDir: join(this.need(this.dir, 'directory'), 'data'),
      ...this.opts.fulcrum,
      configPath: this.configPath,
      xdsPort,
    });
  }

  async restartFulcrum(whileDown?: () => Promise<unknown>): Promise<Fulcrum> {
    const running = this.need(this.fulcrum, 'fulcrum');
    const port = running.xdsPort;
    await running.stop();
    this.fulcrum = undefined;
    await whileDown?.();
    this.fulcrum = await this.startFulcrum(port);
    return this.fulcrum;
  }

  async addEnvoy(opts: Partial<StartEnvoyOptions>): Promise<EnvoyHandle> {
    const n = this.envoys.length;
    const name = n === 0 ? this.opts.name : `${this.opts.name}-${n + 1}`;
    const envoy = await startEnvoy({ mode: 'sotw', nodeId: name, name: `envoy-${name}`, ...opts, xdsPort: this.need(this.fulcrum, 'fulcrum').xdsPort });
    this.envoys.push(envoy);
    return envoy;
  }

  onStop(fn: () => Promise<void> | void): void {
    this.stopHooks.push(fn);
  }

  stop(): Promise<void> {
    this.stopping ??= this.stopAll();
    return this.stopping;
  }

  private async stopAll(): Promise<void> {
    for (const hook of [...this.stopHooks].reverse()) await hook();
    for (const envoy of [...this.envoys].reverse()) await envoy.stop();
    await this.fulcrum?.stop();
    await this.backends?.close();
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }

  rig(): Rig<B> {
    const backends = this.need(this.backends, 'backends');
    const fulcrum = (): Fulcrum => this.need(this.fulcrum, 'fulcrum');
    const firstEnvoy = (): EnvoyHandle => this.need(this.envoys[0], 'Envoy (started with envoy: false?)');
    return {
      name: this.opts.name,
      dir: this.need(this.dir, 'directory'),
      configPath: this.configPath,
      backends,
      get fulcrum() {
        return fulcrum();
      },
      get envoy() {
        return firstEnvoy();
      },
      envoys: this.envoys,
      listenerPort: this.listenerPort,
      url: `http://127.0.0.1:${this.listenerPort}/`,
      writeConfig: (config) => this.writeConfig(config),
      restartFulcrum: (whileDown) => this.restartFulcrum(whileDown),
      addEnvoy: (opts = {}) => this.addEnvoy(opts),
      onStop: (fn) => this.onStop(fn),
      stop: () => this.stop(),
    };
  }

  private need<T>(value: T | undefined, what: string): T {
    if (value === undefined) throw new Error(`rig ${this.opts.name}: no ${what}`);
    return value;
  }
}
