import { describe, expect, it } from 'vitest';
import { auditView, jsonBytes, summarize } from '../../src/admin/audit-view.js';

/** The page's last bound: an entry the store did not trim (a huge listener, say) is summarised here. */
describe('summarize', () => {
  const routes = Array.from({ length: 2000 }, (_, i) => ({ domain: '*', prefix: `/r${i}`, cluster: 'web' }));
  const listener = (n: number) => ({ name: 'edge', kind: 'socket', address: '0.0.0.0', port: 10000, routes: routes.slice(0, n), owner: 'api', revision: 7, updatedAt: '2026-12-01T00:00:00.000Z' });
  const entry = { id: 9, at: '2026-12-01T00:00:00.000Z', actor: 'token:ci', action: 'update' as const, kind: 'listener' as const, name: 'edge', revision: 7, before: listener(1000), after: listener(2000) };

  it('leaves a small entry whole and drops before/after of one still too large without its endpoints', () => {
    const view = auditView(entry);
    expect(view.changed).toEqual(['routes']);
    expect(summarize(view, 1 << 20)).toBe(view);
    const small = summarize(view, 4096);
    expect(jsonBytes(small)).toBeLessThanOrEqual(4096);
    expect(small).not.toHaveProperty('before');
    expect(small).not.toHaveProperty('after');
    expect(small).toMatchObject({ action: 'replace', changed: ['routes'], summarized: { href: '/v1/audit/9', bytes: jsonBytes(view) } });
    expect(small.summarized).not.toHaveProperty('endpoints');
  });
});
