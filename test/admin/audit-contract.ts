/**
 * The audit log in the API's shapes, over any durable store (SQLite and etcd run the same
 * checks): before/after as GET returns the resource, operator actions by name, the fields that
 * changed, pages bounded in bytes with large entries summarised, and the full entry by id.
 */
import { expect, it } from 'vitest';
import { auditPage, auditPageSteps, ENTRY_BYTES } from '../../src/admin/routes/audit.js';
import { auditView } from '../../src/admin/audit-view.js';
import { clusterView } from '../../src/admin/resources.js';
import type { CatalogStore, ClusterRecord } from '../../src/catalog/store/index.js';
import { cluster, endpoint } from '../catalog/helpers.js';

const API = { actor: 'token:ci', owner: 'api' } as const;

/** `n` endpoints 10.x.y.z:8080 with weight `weight`. */
export const many = (n: number, weight = 1) =>
  Array.from({ length: n }, (_, i) => endpoint(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, 8080, { weight }));

const bytesOf = (v: unknown): number => Buffer.byteLength(JSON.stringify(v), 'utf8');

export function auditContract(open: () => Promise<CatalogStore>, bigCluster: number): void {
  it('shows each change in the API\'s shapes, with the operator\'s verb (replace, patch, drain...) and the fields that changed', async () => {
    const s = await open();
    await s.putCluster(cluster('a', [endpoint('10.0.0.1')]), API);
    const created = clusterView(s.getCluster('a') as ClusterRecord);
    await s.putCluster(cluster('a', [endpoint('10.0.0.1')], { connectTimeoutMs: 250 }), { ...API, actor: 'config-file' });
    await s.setEndpointState('a', '10.0.0.1', 8080, 'draining', { actor: 'token:ops' });
    await s.setEndpointState('a', '10.0.0.1', 8080, 'active', { actor: 'token:ops' });
    const events: string[] = [];
    const off = s.onChange((c) => events.push(...c.changes.map((x) => x.action)));
    await s.putEndpoint('a', endpoint('10.0.0.1', 8080, { weight: 5 }), { ...API, intent: 'patch' });
    await s.putCluster(cluster('a', [endpoint('10.0.0.1', 8080, { weight: 5 })], { connectTimeoutMs: 300 }), { ...API, intent: 'patch' });
    off();
    expect(events).toEqual(['patch', 'patch']);
    await s.deleteCluster('a', API);

    const { entries, nextBefore } = auditPage(s, 100, 1024 * 1024);
    expect(nextBefore).toBeUndefined();
    expect(entries.map((e) => [e.actor, e.action, e.kind, e.name, e.changed])).toEqual([
      ['token:ci', 'delete', 'cluster', 'a', []],
      ['token:ci', 'patch', 'cluster', 'a', ['connectTimeoutMs']],
      ['token:ci', 'patch', 'endpoint', 'a/10.0.0.1:8080', ['weight']],
      ['token:ops', 'enable', 'endpoint', 'a/10.0.0.1:8080', ['state']],
      ['token:ops', 'drain', 'endpoint', 'a/10.0.0.1:8080', ['state']],
      ['config-file', 'replace', 'cluster', 'a', ['connectTimeoutMs']],
      ['token:ci', 'create', 'cluster', 'a', []],
    ]);
    const [del, , , , drain, update, create] = entries;
    expect(create?.before).toBeNull();
    expect(create?.after).toEqual(created); // exactly what GET /v1/clusters/a answered then
    expect(create?.after).toMatchObject({ weighting: { policy: 'static' }, endpoints: [{ locality: { subZone: '' } }] });
    expect(update?.before).toMatchObject({ connectTimeoutMs: 1000 });
    expect(update?.after).toMatchObject({ connectTimeoutMs: 250 });
    expect(drain).toMatchObject({ cluster: 'a', endpoint: '10.0.0.1:8080', before: { state: 'active' }, after: { state: 'draining' } });
    // An endpoint as its cluster's endpoint list shows it: no store bookkeeping beyond revision and updatedAt.
    expect(Object.keys(drain?.after as object).sort()).toEqual(['address', 'health', 'locality', 'port', 'priority', 'revision', 'state', 'updatedAt', 'weight']);
    expect(del?.after).toBeNull();
    expect(del?.before).toMatchObject({ name: 'a', connectTimeoutMs: 300, owner: 'api' });
    expect(entries.every((e) => e.summarized === undefined)).toBe(true);
  });

  it(`bounds a page in bytes: a ${bigCluster}-endpoint change is summarised, and is read in full by id`, async () => {
    const s = await open();
    await s.putCluster(cluster('big', many(bigCluster, 1)), API);
    await s.putCluster(cluster('big', [...many(bigCluster, 2).slice(0, bigCluster - 10), endpoint('192.168.0.1')]), API);
    for (let i = 0; i < 5; i++) await s.putCluster(cluster(`small${i}`, [endpoint('10.9.0.1')]), API);

    const page = auditPage(s, 100, 256 * 1024);
    expect(page.entries.map((e) => e.name)).toEqual(['small4', 'small3', 'small2', 'small1', 'small0', 'big', 'big']);
    expect(bytesOf(page)).toBeLessThanOrEqual(256 * 1024 + 64);
    // The store handed the page the large entries trimmed: their endpoint lists were never decoded.
    expect(s.audit(2, page.entries[4]?.id, { trimOver: ENTRY_BYTES }).map((e) => e.trimmed?.endpoints)).toEqual([
      { before: bigCluster, after: bigCluster - 9 },
      { before: null, after: bigCluster },
    ]);
    expect(s.audit(1, page.entries[4]?.id)[0]?.trimmed).toBeUndefined();
    const [update, create] = page.entries.slice(5);
    for (const e of [update, create]) {
      expect(bytesOf(e)).toBeLessThanOrEqual(ENTRY_BYTES);
      expect(e?.summarized?.href).toBe(`/v1/audit/${e?.id}`);
      expect(e?.summarized?.bytes).toBeGreaterThan(ENTRY_BYTES);
      expect(e?.after).toMatchObject({ name: 'big', lbPolicy: 'ROUND_ROBIN' });
      expect(e?.after).not.toHaveProperty('endpoints');
    }
    expect(create?.summarized?.endpoints).toEqual({ before: 0, after: bigCluster });
    expect(update?.summarized?.endpoints).toEqual({ before: bigCluster, after: bigCluster - 9 });
    expect(update?.changed).toEqual(['endpoints']);
    expect(update?.before).toMatchObject({ name: 'big', owner: 'api', weighting: { policy: 'static' } });

    const full = auditView(s.audit(1, (update?.id ?? 0) + 1)[0]!);
    expect(full.id).toBe(update?.id);
    expect((full.after as { endpoints: unknown[] }).endpoints).toHaveLength(bigCluster - 9);
  });

  it('pages by bytes: a small budget walks the whole log once, newest first, at least one entry a page', async () => {
    const s = await open();
    for (let i = 0; i < 12; i++) await s.putCluster(cluster(`c${String(i).padStart(2, '0')}`, many(20)), API);
    const names: string[] = [];
    let before: number | undefined;
    let pages = 0;
    do {
      const page = auditPage(s, 100, 4096, before);
      expect(page.entries.length).toBeGreaterThanOrEqual(1);
      expect(page.entries.length === 1 || bytesOf(page.entries) <= 4096).toBe(true);
      names.push(...page.entries.map((e) => e.name));
      before = page.nextBefore;
      pages++;
    } while (before !== undefined && pages < 50);
    expect(names).toEqual(Array.from({ length: 12 }, (_, i) => `c${String(11 - i).padStart(2, '0')}`));
    expect(pages).toBeGreaterThan(2);
  });

  it('reads a page in steps (a chunk of the log per turn) that writes between two steps do not change', async () => {
    const s = await open();
    for (let i = 0; i < 35; i++) await s.putCluster(cluster(`c${String(i).padStart(2, '0')}`, many(3)), API);
    const whole = auditPage(s, 30, 1024 * 1024);
    const steps = auditPageSteps(s, 30, 1024 * 1024);
    let step = steps.next();
    let writes = 0;
    while (step.done !== true) {
      // Newer entries (higher ids) arrive while the page is read: not on this page, which goes by id.
      await s.putCluster(cluster(`w${writes++}`, many(2)), API);
      step = steps.next();
    }
    expect(writes).toBeGreaterThan(1); // the page was read in several steps
    expect(step.value).toEqual(whole);
    expect(step.value.entries.map((e) => e.name)).toEqual(Array.from({ length: 30 }, (_, i) => `c${String(34 - i).padStart(2, '0')}`));
  });
}
