import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DurableStore } from '../../src/catalog/store/durable-store.js';
import { cleanupTempDirs, cluster, tempDir } from './helpers.js';

const quiet = { warn: () => undefined };

describe('DurableStore', () => {
  afterEach(cleanupTempDirs);

  it('opens the store in the given directory and keeps the directory at stop', async () => {
    const dir = tempDir();
    const durable = new DurableStore(dir, quiet);
    expect(() => durable.store).toThrow('not open');
    await durable.start();
    await durable.store.seedFromConfig({ clusters: [cluster('web')], listeners: [], nodeGroups: [] });
    expect(durable.dir).toBe(dir);
    await durable.stop();
    const again = new DurableStore(dir, quiet);
    await again.start();
    expect(again.store.catalog().clusters.map((c) => c.name)).toEqual(['web']);
    await again.stop();
  });

  it('without a directory uses a temporary one, says so, and removes it at stop', async () => {
    const warnings: string[] = [];
    const durable = new DurableStore(undefined, { warn: (_obj, msg) => void warnings.push(msg) });
    await durable.start();
    const dir = durable.dir;
    expect(existsSync(dir)).toBe(true);
    expect(warnings).toEqual(['no data directory given: state is kept in a temporary directory and lost at stop']);
    await durable.stop();
    expect(existsSync(dir)).toBe(false);
  });

  it('fails to start when the store cannot be opened', async () => {
    const file = join(tempDir(), 'not-a-directory');
    await writeFile(file, 'x');
    const durable = new DurableStore(file, quiet);
    await expect(durable.start()).rejects.toThrow();
    expect(() => durable.store).toThrow('not open');
    await durable.stop();
  });
});
