/**
 * The admin port's cap on open connections (server.admin.maxConnections), on a running fulcrum:
 * idle keep-alive connections up to the cap are served, one more is closed at accept (counted and
 * logged), those already open keep working, and a place freed is taken again.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/sources/config-file.js';
import { startFulcrum, type Fulcrum } from '../../src/main.js';
import { waitFor } from '../support/wait.js';

const CAP = 3;
let dir: string;
let fulcrum: Fulcrum;
const warnings: string[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fulcrum-admin-cap-'));
  const configPath = join(dir, 'fulcrum.yaml');
  await writeFile(configPath, `server:\n  admin:\n    maxConnections: ${CAP}\nclusters:\n  - name: web\n    endpoints: [{ address: 127.0.0.1, port: 9 }]\n`);
  fulcrum = await startFulcrum({
    configPath,
    xdsPort: 0,
    xdsAddress: '127.0.0.1',
    adminPort: 0,
    adminAddress: '127.0.0.1',
    dataDir: join(dir, 'data'),
    logger: pino({ level: 'warn' }, { write: (line: string) => void warnings.push((JSON.parse(line) as { msg: string }).msg) }),
  });
});

afterAll(async () => {
  await fulcrum?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** A raw keep-alive connection to the admin port, with what it has read so far. */
interface Conn {
  readonly socket: Socket;
  readonly read: () => string;
  readonly closed: () => boolean;
}

function open(): Conn {
  const socket = connect({ host: '127.0.0.1', port: fulcrum.adminPort });
  let text = '';
  let closed = false;
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => void (text += chunk));
  socket.on('error', () => undefined);
  socket.on('close', () => void (closed = true));
  return { socket, read: () => text, closed: () => closed };
}

/** Sends GET /healthz on the connection and waits for its answer's status line. */
async function healthz(conn: Conn): Promise<string> {
  const before = conn.read().length;
  conn.socket.write('GET /healthz HTTP/1.1\r\nHost: fulcrum\r\n\r\n');
  await waitFor(() => conn.read().length > before && conn.read().slice(before).includes('\r\n\r\n'), { what: 'an answer on the kept-alive connection' });
  return conn.read().slice(before).split('\r\n')[0] ?? '';
}

async function refusedTotal(): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${fulcrum.adminPort}/metrics`)).text();
  return Number(/^fulcrum_admin_connections_refused_total (\d+)$/m.exec(text)?.[1] ?? NaN);
}

describe('the admin port caps its open connections', () => {
  it('closes a connection over server.admin.maxConnections at accept; open ones keep working; a freed place is taken again', async () => {
    const held = Array.from({ length: CAP }, open);
    for (const conn of held) expect(await healthz(conn)).toBe('HTTP/1.1 200 OK');
    const over = open();
    over.socket.write('GET /healthz HTTP/1.1\r\nHost: fulcrum\r\n\r\n');
    await waitFor(() => over.closed(), { what: 'the connection over the cap closed' });
    expect(over.read()).toBe('');
    // The held ones, idle meanwhile, still answer.
    for (const conn of held) expect(await healthz(conn)).toBe('HTTP/1.1 200 OK');
    expect(warnings).toContainEqual(`admin port refused a connection: server.admin.maxConnections (${CAP}) are open`);
    held[0]?.socket.destroy();
    await waitFor(() => held[0]?.closed() === true, { what: 'a held connection closed' });
    // The metrics scrape is a connection too: it takes the freed place.
    expect(await waitFor(async () => (await refusedTotal()) || undefined, { what: 'the refusal counted' })).toBe(1);
    for (const conn of held.slice(1)) conn.socket.destroy();
  });

  it('the config file refuses a cap that is not a positive whole number', () => {
    expect(() => parseConfig('server: { admin: { maxConnections: 0 } }\n', 'f.yaml')).toThrow(/f\.yaml: \/server\/admin\/maxConnections/);
    expect(() => parseConfig('server: { admin: { maxConnections: 1.5 } }\n', 'f.yaml')).toThrow(/\/server\/admin\/maxConnections/);
    expect(parseConfig('server: { admin: { maxConnections: 20000 } }\n', 'f.yaml').server.admin.maxConnections).toBe(20_000);
    expect(parseConfig('clusters: []\n', 'f.yaml').server.admin.maxConnections).toBeUndefined();
  });
});
