/**
 * Durability proof: a child process streams writes and prints "ACK <n>" after each commit
 * returns; we SIGKILL it mid-stream, reopen the database and check that every ACKed write is
 * there, that no transaction is half-applied, and that SQLite's integrity check passes.
 *
 * SIGKILL proves durability against a process crash. Power loss cannot be simulated here; that
 * is what `synchronous = FULL` is for (see openStore).
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/catalog/store/index.js';
import { cleanupTempDirs, tempDir } from './helpers.js';
import { scaled } from '../support/timing.js';

const WRITER = fileURLToPath(new URL('./durability-writer.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

afterAll(cleanupTempDirs);

/** Runs the writer until `killAfter` ACKs (plus `extraDelayMs`), SIGKILLs it, returns the highest ACK seen. */
function runAndKill(dir: string, killAfter: number, extraDelayMs: number, mode = 'sync'): Promise<{ maxAck: number; signal: NodeJS.Signals | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', WRITER, dir, '1000000', mode], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let buf = '';
    let stderr = '';
    let maxAck = 0;
    let killing = false;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`writer did not reach ${killAfter} ACKs in time (max ${maxAck}); stderr: ${stderr}`));
    }, scaled(10_000));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      const lines = buf.split('\n');
      buf = lines.pop() ?? '';
      for (const line of lines) {
        const m = /^ACK (\d+)$/.exec(line);
        if (m) maxAck = Math.max(maxAck, Number(m[1]));
      }
      if (!killing && maxAck >= killAfter) {
        killing = true;
        if (extraDelayMs > 0) setTimeout(() => child.kill('SIGKILL'), extraDelayMs);
        else child.kill('SIGKILL');
      }
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (signal !== 'SIGKILL') reject(new Error(`writer exited on its own (code ${code}); stderr: ${stderr}`));
      else resolve({ maxAck, signal });
    });
  });
}

describe('durability', () => {
  // Kill points: right after the first write, and at several depths into the stream; the extra
  // delay lets the kill land at an arbitrary point inside a later transaction.
  const cases: Array<[number, number]> = [
    [1, 0],
    [17, 0],
    [60, 3],
    [150, 7],
  ];

  // "durably": writes as the server's write lane makes them (pushed before their fsync, ACKed after).
  const modes = cases.flatMap(([k, d]) => [[k, d, 'sync'], [k, d, 'durably']] as Array<[number, number, string]>);

  it.each(modes)('every ACKed write survives SIGKILL after %i ACKs (+%i ms), %s writes', async (killAfter, extraDelayMs, mode) => {
    const dir = tempDir();
    const { maxAck } = await runAndKill(dir, killAfter, extraDelayMs, mode);
    expect(maxAck).toBeGreaterThanOrEqual(killAfter);

    // Integrity first, on a plain connection (this also recovers the WAL left by the kill).
    const raw = new Database(join(dir, 'fulcrum.db'));
    expect(raw.pragma('integrity_check', { simple: true })).toBe('ok');
    expect(raw.pragma('foreign_key_check')).toEqual([]);
    raw.close();

    const store = openStore(dir);
    try {
      let lastWeight = 0;
      let audited = 0;
      for (let n = 1; n <= maxAck; n++) {
        if (n % 3 === 1) {
          const c = store.getCluster(`c${n}`);
          expect(c, `write ${n}: cluster c${n}`).toBeDefined();
          // Atomic: the cluster never exists without the endpoint written in the same transaction.
          expect(c!.endpoints.some((e) => e.address === '10.0.0.1')).toBe(true);
          audited++;
        } else if (n % 3 === 2) {
          const address = `10.1.${Math.floor(n / 256) % 256}.${n % 256}`;
          expect(store.getEndpoint(`c${n - 1}`, address, 80), `write ${n}: endpoint ${address}`).toMatchObject({ weight: n });
          audited++;
        } else {
          lastWeight = n;
        }
      }
      const w = store.loadWeights().get('w')?.get('e') ?? 0;
      expect(w).toBeGreaterThanOrEqual(lastWeight);
      expect(w).toBeLessThanOrEqual(maxAck + 3); // at most one write past the last ACK can have committed
      expect(store.audit(1_000_000).length).toBeGreaterThanOrEqual(audited);
      // Every cluster in the database has its audit row (no write without its audit, and vice versa).
      const clusterCreates = store.audit(1_000_000).filter((a) => a.kind === 'cluster' && a.action === 'create').length;
      expect(clusterCreates).toBe(store.listClusters().length);
    } finally {
      store.close();
    }
  });
});
