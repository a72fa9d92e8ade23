import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { startFulcrum } from '../../src/main.js';

/** A logger whose JSON lines the test can read. */
function capture(): { log: pino.Logger; lines: () => Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  return { log: pino({ level: 'info' }, sink), lines: () => lines };
}

describe('startFulcrum lifecycle', () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('a failed start (xDS port taken) undoes what had started: admin port released, temporary store removed', async () => {
    dir = await mkdtemp(join(tmpdir(), 'fulcrum-lifecycle-'));
    const configPath = join(dir, 'fulcrum.yaml');
    await writeFile(configPath, 'clusters: [{ name: web, endpoints: [{ address: 10.0.0.1, port: 80 }] }]\n');
    const busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    const xdsPort = (busy.address() as AddressInfo).port;
    const { log, lines } = capture();
    try {
      await expect(startFulcrum({ configPath, xdsPort, xdsAddress: '127.0.0.1', adminAddress: '127.0.0.1', logger: log })).rejects.toThrow();
    } finally {
      busy.close();
    }
    const adminPort = lines().find((l) => l.msg === 'admin server listening')?.port;
    const dataDir = lines().find((l) => typeof l.dir === 'string')?.dir;
    expect(typeof adminPort).toBe('number');
    await expect(fetch(`http://127.0.0.1:${String(adminPort)}/healthz`)).rejects.toThrow();
    expect(typeof dataDir).toBe('string');
    expect(existsSync(String(dataDir))).toBe(false);
    expect(lines().filter((l) => l.msg === 'component failed to stop')).toEqual([]);
  });

  it('stop closes the admin API and the store and removes a temporary data directory', async () => {
    dir = await mkdtemp(join(tmpdir(), 'fulcrum-lifecycle-'));
    const configPath = join(dir, 'fulcrum.yaml');
    await writeFile(configPath, 'clusters: [{ name: web, endpoints: [{ address: 10.0.0.1, port: 80 }] }]\n');
    const { log, lines } = capture();
    const f = await startFulcrum({ configPath, xdsPort: 0, xdsAddress: '127.0.0.1', adminAddress: '127.0.0.1', logger: log });
    expect((await fetch(`http://127.0.0.1:${f.adminPort}/readyz`)).status).toBe(200);
    expect(f.store.catalog().clusters.map((c) => c.name)).toEqual(['web']);
    await f.stop();
    await expect(fetch(`http://127.0.0.1:${f.adminPort}/healthz`)).rejects.toThrow();
    expect(existsSync(f.dataDir)).toBe(false);
    expect(() => f.store.catalog()).toThrow();
    expect(lines().at(-1)?.msg).toBe('stopped');
  });

  it.each(['', '\n  \n', '# fulcrum config, generated\n---\n'])('refuses to start on a file holding no config (%j): not the defaults, not an emptied catalog', async (text) => {
    dir = await mkdtemp(join(tmpdir(), 'fulcrum-lifecycle-'));
    const configPath = join(dir, 'fulcrum.yaml');
    await writeFile(configPath, text);
    const { log } = capture();
    await expect(startFulcrum({ configPath, xdsPort: 0, xdsAddress: '127.0.0.1', adminAddress: '127.0.0.1', logger: log })).rejects.toThrow(/holds no config.*clusters: \[\]/);
    // Said as the error says: an empty config starts.
    await writeFile(configPath, 'clusters: []\n');
    const f = await startFulcrum({ configPath, xdsPort: 0, xdsAddress: '127.0.0.1', adminAddress: '127.0.0.1', logger: log });
    expect(f.store.catalog().clusters).toEqual([]);
    await f.stop();
  });
});
