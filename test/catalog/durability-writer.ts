/**
 * Child process of durability.test.ts: `node --import tsx durability-writer.ts <dir> <count>`.
 * Performs a stream of committed writes and prints `ACK <n>` after each one returns, so every
 * ACKed write must be found after the parent SIGKILLs this process.
 *
 * Write n (1-based) is, in one transaction each:
 *   - n % 3 == 1: create cluster `c<n>` with one endpoint;
 *   - n % 3 == 2: add endpoint 10.1.<n/256>.<n%256>:80 to cluster `c<n-1>`;
 *   - n % 3 == 0: save published weight `n` for cluster `w`, endpoint `e`;
 * plus the audit row (for the first two).
 */
import { writeSync } from 'node:fs';
import { openStore } from '../../src/catalog/store/index.js';

const [dir, countArg, mode] = process.argv.slice(2);
if (!dir) throw new Error('usage: durability-writer.ts <dir> [count]');
const count = Number(countArg ?? 1_000_000);
const store = openStore(dir);
const OPTS = { actor: 'writer', owner: 'api' } as const;

// "durably": each write as the running server's write lane makes it (Store.durably: committed
// without waiting for the disk, settled once the WAL is fsynced); the ACK waits for it to settle.
const settle = async (write: () => unknown): Promise<unknown> => (mode === 'durably' ? store.durably(write) : write());

writeSync(1, 'READY\n');
for (let n = 1; n <= count; n++) {
  await settle(() => writeNth(n));
  // Synchronous write straight to fd 1: the ACK leaves only after the write settled.
  writeSync(1, `ACK ${n}\n`);
}
store.close();

function writeNth(n: number): void {
  if (n % 3 === 1) {
    store.putCluster(
      {
        name: `c${n}`,
        lbPolicy: 'ROUND_ROBIN',
        connectTimeoutMs: 1000,
        http2: false,
        weighting: { kind: 'static' },
        endpoints: [{ address: '10.0.0.1', port: 80, weight: 1, priority: 0, health: 'HEALTHY', locality: { region: '', zone: '', subZone: '' } }],
      },
      OPTS,
    );
  } else if (n % 3 === 2) {
    store.putEndpoint(
      `c${n - 1}`,
      { address: `10.1.${Math.floor(n / 256) % 256}.${n % 256}`, port: 80, weight: n, priority: 0, health: 'HEALTHY', locality: { region: '', zone: '', subZone: '' } },
      OPTS,
    );
  } else {
    store.saveWeights('w', new Map([['e', n]]));
  }
}
