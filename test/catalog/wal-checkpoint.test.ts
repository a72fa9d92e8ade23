import { statSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../../src/catalog/store/index.js';
import { CHECKPOINT_EVERY_COMMITS } from '../../src/catalog/store/wal-checkpointer.js';
import type { Endpoint } from '../../src/catalog/types.js';
import { cleanupTempDirs, cluster, endpoint, tempDir } from './helpers.js';
import { waitFor } from '../support/wait.js';

const API = { actor: 'alice', owner: 'api' } as const;
const open: Store[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.close();
  cleanupTempDirs();
});

const many = (n: number, weight: number): Endpoint[] =>
  Array.from({ length: n }, (_, i) => endpoint(`10.0.${(i >> 8) & 255}.${i & 255}`, 8080, { weight }));

describe('WAL checkpoints of the SQLite store', () => {
  it('are not run inside a commit at SQLite\'s default threshold: the worker copies the pages after enough commits', async () => {
    const s = openStore(tempDir());
    open.push(s);
    s.putCluster(cluster('c', many(400, 1)), API);
    const size = (): number => statSync(s.file).size;
    const before = size();
    // Each write re-weights 400 endpoints and audits the cluster before and after: well over
    // SQLite's default 1,000 pages (4 MB) in the WAL over these commits, which SQLite's own
    // checkpoint would have copied into the database file inside one of them.
    const writes = CHECKPOINT_EVERY_COMMITS - 2;
    for (let w = 2; w < writes + 2; w++) s.putCluster(cluster('c', many(400, w)), API);
    expect(size()).toBe(before);
    expect(statSync(`${s.file}-wal`).size).toBeGreaterThan(4 * 1024 * 1024);
    // One more commit reaches CHECKPOINT_EVERY_COMMITS: the worker checkpoints, with no further write.
    s.putCluster(cluster('c', many(400, 1000)), API);
    await waitFor(() => size() > before + 1024 * 1024 || undefined, { what: 'the worker checkpointed', timeoutMs: 60_000 });
    expect(s.getCluster('c')?.endpoints.map((e) => e.weight)).toEqual(many(400, 1000).map(() => 1000));
  });
});
