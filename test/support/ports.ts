import fs from 'node:fs';
import net from 'node:net';

/**
 * Free TCP ports for programs that must be told a port number (kube-apiserver, etcd, Envoy
 * listeners). Such a port is free only when it is checked, and something else may take it before
 * the program binds it. The usual taker is the kernel itself: every `listen(0)` and every outgoing
 * connection gets a port from the ephemeral range (`ip_local_port_range`, 32768–60999 by default),
 * and a parallel suite makes thousands of those. So ports are drawn at random from below that range,
 * where the kernel never hands one out, checked by binding, and never handed out twice by this
 * process. Prefer port 0 plus a discovery mechanism where the program has one (Envoy's admin does:
 * see `startEnvoy`).
 */
const handedOut = new Set<number>();

/**
 * Vitest runs test files in up to `maxWorkers` processes at once, each told its slot in
 * `VITEST_POOL_ID` (1..maxWorkers). `handedOut` only keeps one process from handing a port out
 * twice; two workers drawing from the same range could both see a port free and one of them lose
 * it (a CI run lost an Envoy listener that way: "cannot bind ... Address already in use"). So each
 * slot draws from its own slice of the range, and no two running workers can ever pick alike.
 */
const SLICES = 8;

/** The range to draw from: this worker's slice of [1024 + 8192, start of the ephemeral range). */
export function drawRange(poolId = process.env.VITEST_POOL_ID): [number, number] {
  let ephemeralStart = 32768;
  try {
    const first = Number(fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    if (Number.isInteger(first) && first > 12_000) ephemeralStart = first;
  } catch {
    // Not Linux: keep the IANA-style default.
  }
  const low = 9216;
  const slot = Number(poolId);
  if (!Number.isInteger(slot) || slot < 1) return [low, ephemeralStart];
  if (slot > SLICES) throw new Error(`drawRange: vitest worker ${slot} of at most ${SLICES} (raise SLICES with maxWorkers)`);
  const width = Math.floor((ephemeralStart - low) / SLICES);
  const start = low + (slot - 1) * width;
  return [start, start + width];
}

function canBind(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

async function pick(host: string): Promise<number> {
  const [low, high] = drawRange();
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = low + Math.floor(Math.random() * (high - low));
    if (handedOut.has(port)) continue;
    if (await canBind(port, host)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`freePort: no free port found in ${low}-${high} on ${host} after 200 tries`);
}

/** A currently free TCP port on `host`, outside the kernel's ephemeral range. Use it promptly. */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return pick(host);
}

/** `n` distinct free ports on `host`, outside the kernel's ephemeral range. */
export async function freePorts(n: number, host = '127.0.0.1'): Promise<number[]> {
  const ports: number[] = [];
  for (let i = 0; i < n; i++) ports.push(await pick(host));
  return ports;
}
