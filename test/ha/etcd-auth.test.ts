/**
 * The etcd store on an etcd with authentication on: the configured username and password (from a
 * file, as a mounted Secret) work; a wrong password fails at start with the store's settings named.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { pino } from 'pino';
import { EtcdCompactor } from '../../src/catalog/store/etcd-compactor.js';
import { openEtcdStore } from '../../src/catalog/store/etcd-store.js';
import { cluster } from '../catalog/helpers.js';
import { describeEtcd, startEtcdCluster, type EtcdCluster } from '../support/etcd-cluster.js';

describeEtcd('etcd store with etcd authentication', () => {
  let etcd: EtcdCluster;
  let dir: string;
  beforeAll(async () => {
    etcd = await startEtcdCluster(1);
    dir = await mkdtemp(join(tmpdir(), 'fulcrum-etcd-auth-'));
    const admin = new Etcd3({ hosts: [...etcd.endpoints] });
    try {
      const root = await admin.user('root').create('root-pw');
      await root.addRole('root');
      const role = await admin.role('fulcrum').create();
      await role.grant({ permission: 'Readwrite', range: admin.range({ prefix: '/auth-test/' }) });
      await (await admin.user('fulcrum').create('s3cret')).addRole('fulcrum');
      await admin.auth.authEnable({});
    } finally {
      admin.close();
    }
    await writeFile(join(dir, 'password'), 's3cret\n');
  }, 120_000);
  afterAll(async () => {
    await etcd?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('reads and writes with the username and the password file; a wrong password fails at start', async () => {
    const settings = { endpoints: [...etcd.endpoints], prefix: '/auth-test', username: 'fulcrum' };
    const store = await openEtcdStore({ ...settings, passwordFile: join(dir, 'password') });
    try {
      const { revision } = await store.putCluster(cluster('web'), { actor: 'alice', owner: 'api' });
      expect(store.getCluster('web')?.revision).toBe(revision);
      expect(store.health()).toEqual({ writable: true });
    } finally {
      await store.close();
    }
    await expect(openEtcdStore({ ...settings, password: 'wrong' })).rejects.toThrow(/store\.etcd: cannot read \/auth-test from .*authentication failed/i);
  });

  it('a user with read-write on the prefix only may not compact the history: one warning says what to do instead', async () => {
    const client = new Etcd3({ hosts: [...etcd.endpoints], auth: { username: 'fulcrum', password: 's3cret' } });
    const lines: string[] = [];
    const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
    try {
      const compactor = new EtcdCompactor({ client, key: '/auth-test/compaction', everyMs: 60_000, log });
      for (let i = 0; i < 3; i++) {
        await client.put('/auth-test/x').value(String(i));
        expect(await compactor.turn()).toBeUndefined();
      }
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/compaction needs etcd's root role.*--auto-compaction-retention.*compactEveryMs: 0/);
    } finally {
      client.close();
    }
  });
}, { timeout: 120_000 });
