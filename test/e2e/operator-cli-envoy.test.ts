import { expect, it } from 'vitest';
import { runCli } from '../../src/cli/run.js';
import { startBackends } from '../support/backends.js';
import { describeEnvoy } from '../support/envoy.js';
import { useRig } from '../support/rig.js';
import { waitFor } from '../support/wait.js';

/**
 * The operator commands (`fulcrum status|proxies|weights|config-dump`) against a running fulcrum
 * with a real Envoy connected: SYNCED, then NACKED with Envoy's own error after a listener it
 * cannot bind; the same states in `fulcrum_proxies`; tables by default, the API's JSON with -o json.
 */
describeEnvoy('operator CLI against a real Envoy', () => {
  const TOKEN = 'cli-admin-token';
  const NODE = 'cli-e2e';
  const rig = useRig(() => ({
    name: NODE,
    backends: () => startBackends(2),
    config: ({ backends, listenerPort }) => ({
      clusters: [
        {
          name: 'shop',
          endpoints: backends.list.map((b, i) => ({ address: '127.0.0.1', port: b.port, weight: i + 1 })),
        },
      ],
      listeners: [{ name: 'front', address: '127.0.0.1', port: listenerPort, routes: [{ prefix: '/', cluster: 'shop' }] }],
    }),
    fulcrum: { adminPort: 0, auth: { adminTokens: [TOKEN], readTokens: [] } },
    waitForListener: 'front',
  }));

  /** Runs a command in-process as the binary would, with the environment an operator sets. */
  async function cli(...argv: string[]): Promise<{ code: number | 'keep-running'; out: string; err: string }> {
    let out = '';
    let err = '';
    const code = await runCli(argv, {
      env: { FULCRUM_ADMIN_URL: `http://127.0.0.1:${rig().fulcrum.adminPort}`, FULCRUM_ADMIN_TOKEN: TOKEN },
      write: (t) => (out += t),
      error: (t) => (err += t),
      serve: () => Promise.reject(new Error('serve must not be called')),
    });
    return { code, out, err };
  }

  /** The table row of a node: its cells split on runs of spaces. */
  const rowOf = (table: string, node: string) => table.split('\n').find((l) => l.startsWith(`${node} `))?.split(/\s{2,}/);

  it('status: ready, the package version, one proxy', async () => {
    const r = await waitFor(async () => {
      const s = await cli('status');
      return s.code === 0 && s.out.includes('1 SYNCED') && s;
    }, { what: 'status: ready with one SYNCED proxy' });
    expect(r.out).toMatch(/^version\s+\d+\.\d+\.\d+/m);
    expect(r.out).toMatch(/^ready\s+yes$/m);
    const json = JSON.parse((await cli('status', '-o', 'json')).out) as { ready: boolean; proxies: { count: number; byState: Record<string, number> } };
    expect(json).toMatchObject({ ready: true, proxies: { count: 1, byState: { SYNCED: 1 } } });
  });

  it('proxies: one row per proxy, SYNCED for every type', async () => {
    const r = await cli('proxies');
    expect(r.code).toBe(0);
    expect(r.out.split('\n')[0]?.split(/\s+/)).toEqual(['NODE', 'CLUSTER', 'CDS', 'EDS', 'LDS', 'RDS', 'PROTOCOL', 'PEER']);
    expect(rowOf(r.out, NODE)?.slice(2, 6)).toEqual(['SYNCED', 'SYNCED', 'SYNCED', 'SYNCED']);
  });

  it('weights <cluster>: each endpoint with its weight and share; -o json is the API view', async () => {
    const [a, b] = rig().backends.list;
    const r = await cli('weights', 'shop');
    expect(r.code).toBe(0);
    expect(r.out).toContain('cluster shop, policy static');
    expect(r.out).toMatch(new RegExp(`^127\\.0\\.0\\.1:${a?.port}\\s+1\\s+33\\.3%`, 'm'));
    expect(r.out).toMatch(new RegExp(`^127\\.0\\.0\\.1:${b?.port}\\s+2\\s+66\\.7%`, 'm'));
    const json = JSON.parse((await cli('weights', 'shop', '-o', 'json')).out) as { cluster: string; endpoints: unknown[] };
    expect(json.cluster).toBe('shop');
    expect(json.endpoints).toHaveLength(2);
    const missing = await cli('weights', 'nope');
    expect(missing.code).toBe(1);
    expect(missing.err).toContain('404');
  });

  it('config-dump --node: the decoded resources that node is sent', async () => {
    const r = await cli('config-dump', '--node', NODE, '--type', 'lds');
    expect(r.code).toBe(0);
    expect(r.out).toContain('"front"');
    const unknown = await cli('config-dump', '--node', 'no-such-node');
    expect(unknown.code).toBe(1);
    expect(unknown.err).toContain('no connected proxy has node id');
  });

  it('proxies shows NACKED with Envoy\'s error for a listener it cannot bind; fulcrum_proxies counts it', async () => {
    const taken = rig().backends.list[0]?.port;
    const res = await fetch(`http://127.0.0.1:${rig().fulcrum.adminPort}/v1/listeners/clash`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'clash', address: '127.0.0.1', port: taken, routes: [{ prefix: '/', cluster: 'shop' }] }),
    });
    expect(res.status).toBe(201);
    const r = await waitFor(async () => {
      const p = await cli('proxies');
      return rowOf(p.out, NODE)?.[4] === 'NACKED' && p;
    }, { what: 'LDS NACKED in `fulcrum proxies`' });
    expect(rowOf(r.out, NODE)?.slice(2, 4)).toEqual(['SYNCED', 'SYNCED']);
    expect(r.out).toMatch(new RegExp(`^${NODE} LDS rejected version \\S+ \\(refused: clash\\): .*(Address already in use|cannot bind)`, 'm'));
    const status = await cli('status');
    expect(status.out).toContain('1 NACKED');
    const metrics = await (await fetch(`http://127.0.0.1:${rig().fulcrum.adminPort}/metrics`)).text();
    expect(metrics).toMatch(/^fulcrum_proxies\{state="NACKED"\} 1$/m);
    expect(metrics).toMatch(/^fulcrum_proxies\{state="SYNCED"\} 0$/m);
    expect(metrics).toMatch(/^fulcrum_build_info\{version="\d+\.\d+\.\d+",node_version="v\d+\.\d+\.\d+"\} 1$/m);
  });

  it('a wrong token and an unreachable server fail with exit 1 and say what to set', async () => {
    let err = '';
    const weights = await runCli(['weights', 'shop', '--server', `http://127.0.0.1:${rig().fulcrum.adminPort}`], {
      env: { FULCRUM_ADMIN_TOKEN: 'wrong' },
      write: () => undefined,
      error: (t) => (err += t),
      serve: () => Promise.reject(new Error('unused')),
    });
    expect(weights).toBe(1);
    expect(err).toMatch(/401.*FULCRUM_ADMIN_TOKEN/);
    const down = await cli('status', '--server', 'http://127.0.0.1:1');
    expect(down.code).toBe(1);
    expect(down.err).toContain('cannot reach the fulcrum admin API at http://127.0.0.1:1');
  });
});
