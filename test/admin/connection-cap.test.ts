/**
 * The admin port's caps on open connections (server.admin.maxConnections, and per peer
 * maxConnectionsPerPeer), on a running fulcrum: idle keep-alive connections up to a cap are served,
 * one more is closed at accept (counted and logged), those already open keep working, and a place
 * freed is taken again. Peers are told apart by their loopback source address (127.0.0.x).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/sources/config-file.js';
import type { Fulcrum } from '../../src/main.js';
import { waitFor } from '../support/wait.js';
import { startLoopbackFulcrum } from '../support/loopback-fulcrum.js';

const CAP = 5;
const PER_PEER = 3;
let dir: string;
let fulcrum: Fulcrum;
const warnings: string[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fulcrum-admin-cap-'));
  const configPath = join(dir, 'fulcrum.yaml');
  await writeFile(configPath, `server:\n  admin:\n    maxConnections: ${CAP}\n    maxConnectionsPerPeer: ${PER_PEER}\nclusters:\n  - name: web\n    endpoints: [{ address: 127.0.0.1, port: 9 }]\n`);
  fulcrum = await startLoopbackFulcrum(configPath, {
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

function open(from = '127.0.0.1'): Conn {
  const socket = connect({ host: '127.0.0.1', port: fulcrum.adminPort, localAddress: from });
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

async function refusedTotal(limit: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${fulcrum.adminPort}/metrics`)).text();
  return Number(new RegExp(`^fulcrum_admin_connections_refused_total\\{limit="${limit}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
}

/** A connection over a cap: closed at accept, nothing read. */
async function refused(conn: Conn): Promise<void> {
  conn.socket.write('GET /healthz HTTP/1.1\r\nHost: fulcrum\r\n\r\n');
  await waitFor(() => conn.closed(), { what: 'the connection over the cap closed' });
  expect(conn.read()).toBe('');
}

describe('the admin port caps its open connections', () => {
  it('closes a connection over server.admin.maxConnections at accept; open ones keep working; a freed place is taken again', async () => {
    // Two peers, neither at its own cap, fill the port's.
    const held = Array.from({ length: CAP }, (_, i) => open(`127.0.0.${1 + (i % 2)}`));
    for (const conn of held) expect(await healthz(conn)).toBe('HTTP/1.1 200 OK');
    await refused(open('127.0.0.3'));
    // The held ones, idle meanwhile, still answer.
    for (const conn of held) expect(await healthz(conn)).toBe('HTTP/1.1 200 OK');
    expect(warnings).toContainEqual(`admin port refused a connection: server.admin.maxConnections (${CAP}) are open`);
    held[0]?.socket.destroy();
    await waitFor(() => held[0]?.closed() === true, { what: 'a held connection closed' });
    // The metrics scrape is a connection too: it takes the freed place.
    expect(await waitFor(async () => (await refusedTotal('maxConnections')) || undefined, { what: 'the refusal counted' })).toBe(1);
    for (const conn of held.slice(1)) conn.socket.destroy();
    await waitFor(() => held.every((c) => c.closed()), { what: 'the held connections closed' });
  });

  it('closes a connection over server.admin.maxConnectionsPerPeer at accept while other peers still get in', async () => {
    const mine = Array.from({ length: PER_PEER }, () => open('127.0.0.4'));
    for (const conn of mine) expect(await healthz(conn)).toBe('HTTP/1.1 200 OK');
    await refused(open('127.0.0.4'));
    // Another peer (the kubelet's probes, say) is not shut out by this one.
    const other = open('127.0.0.5');
    expect(await healthz(other)).toBe('HTTP/1.1 200 OK');
    for (const conn of mine) expect(await healthz(conn)).toBe('HTTP/1.1 200 OK');
    expect(warnings).toContainEqual(`admin port refused a connection: its peer holds server.admin.maxConnectionsPerPeer (${PER_PEER})`);
    other.socket.destroy();
    mine[0]?.socket.destroy();
    await waitFor(() => other.closed() && mine[0]?.closed() === true, { what: 'two connections closed' });
    expect(await refusedTotal('maxConnectionsPerPeer')).toBe(1);
    // The peer's freed place is taken again.
    const again = open('127.0.0.4');
    expect(await healthz(again)).toBe('HTTP/1.1 200 OK');
    for (const conn of [...mine.slice(1), again]) conn.socket.destroy();
  });

  it('the config file refuses a cap that is not a positive whole number', () => {
    expect(() => parseConfig('server: { admin: { maxConnections: 0 } }\n', 'f.yaml')).toThrow(/f\.yaml: \/server\/admin\/maxConnections/);
    expect(() => parseConfig('server: { admin: { maxConnections: 1.5 } }\n', 'f.yaml')).toThrow(/\/server\/admin\/maxConnections/);
    expect(parseConfig('server: { admin: { maxConnections: 20000 } }\n', 'f.yaml').server.admin.maxConnections).toBe(20_000);
    expect(parseConfig('clusters: []\n', 'f.yaml').server.admin.maxConnections).toBeUndefined();
    expect(() => parseConfig('server: { admin: { maxConnectionsPerPeer: 0 } }\n', 'f.yaml')).toThrow(/\/server\/admin\/maxConnectionsPerPeer/);
    expect(parseConfig('server: { admin: { maxConnectionsPerPeer: 10 } }\n', 'f.yaml').server.admin.maxConnectionsPerPeer).toBe(10);
  });
});
