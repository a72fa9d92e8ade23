/**
 * The acknowledged one-endpoint write of the SQLite store (`durably`: commit, then the WAL's
 * fdatasync) with the WAL written out to its size at open (wal-presize.ts) and without, in the
 * same minutes: two stores in two directories, one's writes then the other's, each a real
 * weight change with its audit row, as the admin API makes them. Prints the latency until the
 * write is durable (what an endpoint PUT's 200 waits for) per store: p50 / p90 / p99 / max.
 *
 *   npx tsx bench/wal-presize.ts [--writes 200] [--rounds 4]
 *
 * --rounds starts both stores afresh that many times (the WAL is deleted at close, so each open
 * is the first ~200 commits of a process, which without presizing all grow the file).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { openStore, type Store } from '../src/catalog/store/store.js';
import { parseClusterBody, parseEndpointBody } from '../src/admin/resources.js';

const { values } = parseArgs({ options: { writes: { type: 'string', default: '200' }, rounds: { type: 'string', default: '4' } } });
const WRITES = Number(values.writes);
const ROUNDS = Number(values.rounds);
const API = { actor: 'bench', owner: 'api' } as const;
const address = (i: number): string => `10.0.${(i >> 8) & 255}.${i & 255}`;

function opened(presizeWalBytes: number | undefined): { store: Store; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-wal-presize-'));
  const store = openStore(dir, presizeWalBytes === undefined ? {} : { presizeWalBytes });
  for (let c = 0; c < 10; c++) {
    const endpoints = Array.from({ length: 100 }, (_, i) => ({ address: address(i), port: 8080, weight: 1 }));
    store.putCluster(parseClusterBody({ lbPolicy: 'ROUND_ROBIN', endpoints }, `c-${c}`), API);
  }
  return { store, dir };
}

const summary = (ms: number[]): string => {
  const s = [...ms].sort((a, b) => a - b);
  const at = (q: number): string => (s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? Number.NaN).toFixed(2);
  return `${s.length} writes: p50 ${at(0.5)} p90 ${at(0.9)} p99 ${at(0.99)} max ${at(1)} ms`;
};

async function main(): Promise<void> {
  const ms = { presized: [] as number[], growing: [] as number[] };
  for (let round = 0; round < ROUNDS; round++) {
    // Opened now (the seeding's commits are the store's own; only the timed writes count).
    const sides = { presized: opened(undefined), growing: opened(0) };
    try {
      // One store's writes, then the other's (order swapped every round): interleaved writes would
      // share journal commits across the two files.
      for (const side of round % 2 === 0 ? (['presized', 'growing'] as const) : (['growing', 'presized'] as const)) {
        const { store } = sides[side];
        for (let w = 0; w < WRITES; w++) {
          const started = performance.now();
          const ep = parseEndpointBody({ weight: 2 + (w % 50) }, address(w % 100), 8080);
          await store.durably(() => store.putEndpoint(`c-${w % 10}`, ep, API));
          ms[side].push(performance.now() - started);
        }
      }
    } finally {
      for (const { store, dir } of Object.values(sides)) {
        store.close();
        rmSync(dir, { recursive: true, force: true });
      }
    }
  }
  process.stdout.write(`load ${loadavg().map((x) => x.toFixed(2)).join(' ')}\nWAL written out at open: ${summary(ms.presized)}\nWAL growing:             ${summary(ms.growing)}\n`);
}

await main();
