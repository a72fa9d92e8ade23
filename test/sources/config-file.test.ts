import http from 'node:http';
import { mkdir, mkdtemp, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../src/sources/config-file.js';
import { ConfigWatcher } from '../../src/sources/config-watcher.js';
import type { LoadedConfig } from '../../src/sources/config-file.js';
import { waitFor } from '../support/wait.js';

/** The problems of a rejected config, undefined when it is accepted. */
function problemsOrNone(text: string): string[] | undefined {
  try {
    parseConfig(text, 'f.yaml');
    return undefined;
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems.map((p) => `${p.path}: ${p.message}`);
  }
}

function problemsOf(text: string): string[] {
  return problemsOrNone(text) ?? expect.fail('expected the config to be rejected');
}

const VALID = `
clusters:
  - name: web
    lbPolicy: LEAST_REQUEST
    leastRequest: { choiceCount: 3 }
    endpoints:
      - { address: 10.0.0.1, port: 80, weight: 2, priority: 1, locality: { region: eu, zone: a } }
      - { address: "::1", port: 81 }
  - name: sticky
    lbPolicy: RING_HASH
listeners:
  - name: ingress
    port: 10000
    routes:
      - { prefix: /s, cluster: sticky, hashPolicy: { cookie: { name: sid, ttlSeconds: 60 } } }
      - { domain: api.example.com, prefix: /, cluster: web, timeoutMs: 1500 }
  - name: greeter
    apiListener: true
    routes: [{ cluster: web }]
`;

describe('config file', () => {
  it('parses the embedded default', async () => {
    const text = await readFile(new URL('../../examples/fulcrum.yaml', import.meta.url), 'utf8');
    const { catalog, server } = parseConfig(text, 'examples/fulcrum.yaml');
    expect(catalog.clusters.map((c) => c.name)).toEqual(['web', 'sessions']);
    expect(server.xds.port).toBe(18000);
  });

  it('fills defaults and keeps what the operator wrote', () => {
    const { catalog, server } = parseConfig(VALID, 'f.yaml');
    const web = catalog.clusters[0];
    expect(web).toMatchObject({ name: 'web', lbPolicy: 'LEAST_REQUEST', leastRequest: { choiceCount: 3 }, connectTimeoutMs: 1000 });
    expect(web?.endpoints[0]).toEqual({
      address: '10.0.0.1', port: 80, weight: 2, priority: 1, health: 'HEALTHY', locality: { region: 'eu', zone: 'a', subZone: '' },
    });
    expect(web?.endpoints[1]).toMatchObject({ weight: 1, priority: 0, health: 'HEALTHY' });
    expect(catalog.clusters[1]?.ringHash).toEqual({ virtualNodesPerHost: 160, hashFunction: 'XX_HASH' });
    expect(catalog.listeners[0]).toMatchObject({ kind: 'socket', address: '0.0.0.0', port: 10000 });
    expect(catalog.listeners[0]?.routes[1]).toEqual({ domain: 'api.example.com', prefix: '/', cluster: 'web', timeoutMs: 1500 });
    expect(catalog.listeners[1]).toMatchObject({ kind: 'api', routes: [{ domain: '*', prefix: '/', cluster: 'web' }] });
    expect(server.xds).toMatchObject({ address: '127.0.0.1', port: 18000, debounceQuietMs: 100, debounceMaxMs: 1000, maxResourceNames: 20000 });
  });

  it('an empty file is an empty catalog', () => {
    expect(parseConfig('', 'f.yaml').catalog).toEqual({ clusters: [], listeners: [], nodeGroups: [] });
  });

  it.each([
    ['clusters: [{ name: a, endpoints: [{ address: 10.0.0.1, port: 70000 }] }]', '/clusters/0/endpoints/0/port'],
    ['clusters: [{ name: a, lbPolicy: FASTEST }]', '/clusters/0/lbPolicy'],
    ['clusters: [{ name: a, colour: red }]', '/clusters/0/colour'],
    ['clusters: [{ name: a, endpoints: [{ address: 10.0.0.1, port: 1, weight: 0 }] }]', '/clusters/0/endpoints/0/weight'],
    ['clusters: [{ name: "", endpoints: [] }]', '/clusters/0/name'],
  ])('rejects %s at %s', (text, path) => {
    expect(problemsOf(text).join('\n')).toContain(path);
  });

  it('reports semantic problems with their paths', () => {
    const problems = problemsOf(`
clusters:
  - { name: a, endpoints: [{ address: backend.local, port: 80 }, { address: 10.0.0.1, port: 80 }, { address: 10.0.0.1, port: 80 }] }
  - { name: a, lbPolicy: ROUND_ROBIN, ringHash: { virtualNodesPerHost: 100 } }
listeners:
  - { name: l, port: 8080, routes: [{ cluster: nope }] }
  - { name: m, port: 8080, routes: [] }
  - { name: g, apiListener: true, port: 1, routes: [] }
  - { name: n, routes: [] }
nodeGroups:
  - { nodeCluster: edge, listeners: [zzz] }
  - { nodeCluster: "*" }
  - { nodeCluster: "\\0grpc\\0edge" }
`);
    expect(problems).toEqual(
      expect.arrayContaining([
        '/clusters/0/endpoints/0/address: "backend.local" is not an IP address',
        '/clusters/0/endpoints/2: duplicate endpoint 10.0.0.1:80',
        '/clusters/1/name: duplicate cluster name "a"',
        '/clusters/1/ringHash: only valid with lbPolicy RING_HASH (is ROUND_ROBIN)',
        '/listeners/0/routes/0/cluster: unknown cluster "nope"',
        '/listeners/1/port: 0.0.0.0:8080 is already used by listener "l"',
        '/listeners/2: an apiListener (proxyless gRPC) takes no address or port',
        '/listeners/3/port: a socket listener needs a port',
        '/nodeGroups/0/listeners/0: unknown listener "zzz"',
        '/nodeGroups/1/nodeCluster: "*" is reserved for the default view',
        '/nodeGroups/2/nodeCluster: must not hold a NUL character',
      ]),
    );
  });

  it('refuses one IPv6 address spelled two ways: one host, one listener socket to Envoy; addresses are kept as written', () => {
    const endpoints = [{ address: '::1', port: 80 }, { address: '2001:db8::1', port: 80 }, { address: '0::1', port: 80 }, { address: '2001:DB8:0::1', port: 80 }, { address: '::1', port: 81 }];
    expect(problemsOf(JSON.stringify({ clusters: [{ name: 'c', endpoints }] }))).toEqual([
      '/clusters/0/endpoints/2: duplicate endpoint: "0::1" and "::1" are one IPv6 address to Envoy; spell it one way (endpoints/0, port 80)',
      '/clusters/0/endpoints/3: duplicate endpoint: "2001:DB8:0::1" and "2001:db8::1" are one IPv6 address to Envoy; spell it one way (endpoints/1, port 80)',
    ]);
    const listeners = [{ name: 'a', address: '::', port: 10000, routes: [] }, { name: 'b', address: '0::0', port: 10000, routes: [] }, { name: 'c', address: '0::0', port: 10001, routes: [] }];
    expect(problemsOf(JSON.stringify({ listeners }))).toEqual([
      '/listeners/1/port: 0::0:10000 is already used by listener "a" ("0::0" and "::" are one IPv6 address to Envoy; spell it one way)',
    ]);
    // Nothing is rewritten: a file that spells each address once keeps its spellings (stored data is keyed by them).
    const { catalog } = parseConfig(JSON.stringify({ clusters: [{ name: 'c', endpoints: [{ address: '2001:DB8:0::1', port: 80 }] }], listeners: [{ name: 'l', address: '0::0', port: 1, routes: [] }] }), 'f.yaml');
    expect(catalog.clusters[0]?.endpoints[0]?.address).toBe('2001:DB8:0::1');
    expect(catalog.listeners[0]?.address).toBe('0::0');
  });

  it('reads weighting policies, safety and probes, and resolves auto by the decision table', () => {
    const { catalog } = parseConfig(`
clusters:
  - name: p
    weighting: { policy: pid, setpoint: 0.7, metric: max, gains: { kp: 0.4 } }
    safety: { maxStepRatio: 1.5, staleAfterMs: 2000 }
    probe: { kind: http, path: /health, intervalMs: 1000 }
  - name: b
    weighting: { policy: blend, blend: { pid: 0.25, ewma: 0.75 }, decay: 0.5 }
  - name: sticky
    weighting: { policy: auto, traits: { sessionAffinity: { header: x-user } } }
    endpoints: [{ address: 10.0.0.1, port: 1 }]
  - name: streams
    weighting: { policy: auto, traits: { longLivedConnections: true } }
listeners:
  - { name: l, port: 1000, routes: [{ prefix: /s, cluster: sticky }, { prefix: /, cluster: p }] }
`, 'f.yaml');
    const [p, b, sticky, streams] = catalog.clusters;
    expect(p?.weighting).toEqual({ kind: 'pid', setpoint: 0.7, metric: 'max', gains: { kp: 0.4 } });
    expect(p?.safety).toEqual({ maxStepRatio: 1.5, staleAfterMs: 2000 });
    expect(p?.probe).toEqual({ kind: 'http', path: '/health', intervalMs: 1000, timeoutMs: 1000 });
    expect(b?.weighting).toEqual({ kind: 'blend', parts: { pid: 0.25, ewma: 0.75 }, decay: 0.5 });
    expect(sticky?.lbPolicy).toBe('RING_HASH');
    expect(sticky?.ringHash?.virtualNodesPerHost).toBe(160);
    expect(sticky?.autoReason).toMatch(/affinity/i);
    expect(streams?.lbPolicy).toBe('LEAST_REQUEST');
    // The affinity key is the cluster's: the routes to it get it when translated (as an API listener's do).
    expect(sticky?.routeHashPolicy).toEqual({ header: 'x-user' });
    expect(streams?.routeHashPolicy).toBeUndefined();
    expect(catalog.listeners[0]?.routes.map((r) => r.hashPolicy)).toEqual([undefined, undefined]);
    expect(catalog.clusters.find((c) => c.name === 'p')?.lbPolicy).toBe('ROUND_ROBIN');
  });

  const probeDoc = (probe: Record<string, unknown>): string => JSON.stringify({ clusters: [{ name: 'p', probe }] });

  it.each([
    [{ kind: 'http', path: '/health check' }, 'a space'],
    [{ kind: 'http', path: '/h\r\nx: y' }, 'CR/LF'],
    [{ kind: 'http', path: '/h\u0000' }, 'a NUL'],
    [{ kind: 'http', path: '/\u20ac' }, 'a character past Latin-1'],
    [{ kind: 'grpc', path: 'my service' }, 'a space in a gRPC service name'],
  ])('refuses a probe path the prober cannot send: %j (%s)', (probe) => {
    expect(problemsOf(probeDoc(probe))).toEqual([expect.stringMatching(/^\/clusters\/0\/probe\/path: .*match/)]);
  });

  it('an HTTP probe path starts with /, as healthCheck.path; a gRPC service name need not', () => {
    expect(problemsOf(probeDoc({ kind: 'http', path: 'health' }))).toEqual(["/clusters/0/probe/path: an HTTP path starts with '/'"]);
    expect(parseConfig(probeDoc({ kind: 'grpc', path: 'grpc.health.v1.Health' }), 'f.yaml').catalog.clusters[0]?.probe?.path).toBe('grpc.health.v1.Health');
    expect(parseConfig(probeDoc({ kind: 'http', path: '/health%20check?deep=1' }), 'f.yaml').catalog.clusters[0]?.probe?.path).toBe('/health%20check?deep=1');
  });

  it('every probe path the file accepts is one Node\'s HTTP client sends (the prober\'s)', () => {
    // Latin-1 and beyond it a few that Node refuses (U+2028, €, an ideographic space, a BOM).
    for (const code of [...Array.from({ length: 0x200 }, (_, i) => i), 0x2028, 0x20ac, 0x3000, 0xfeff]) {
      const path = `/a${String.fromCharCode(code)}`;
      const accepted = problemsOrNone(probeDoc({ kind: 'http', path })) === undefined;
      if (accepted) expect(() => http.request({ host: '127.0.0.1', port: 9, path }).on('error', () => {}).destroy(), `U+${code.toString(16)}`).not.toThrow();
    }
  });

  it('auto turns on locality-tiered balancing for very large clusters', () => {
    const endpoints = Array.from({ length: 1000 }, (_, i) => `{ address: 10.0.${i >> 8}.${i & 255}, port: 80, locality: { zone: z${i % 3} } }`).join(', ');
    const { catalog } = parseConfig(`clusters: [{ name: big, weighting: { policy: auto, traits: { heterogeneousCapacity: true } }, endpoints: [${endpoints}] }]`, 'f.yaml');
    expect(catalog.clusters[0]).toMatchObject({ localityWeighted: true, weighting: { kind: 'pid' } });
    expect(catalog.clusters[0]?.autoReason).toMatch(/locality/);
  });

  it('rejects inconsistent weighting settings', () => {
    const problems = problemsOf(`
clusters:
  - { name: a, lbPolicy: MAGLEV, weighting: { policy: auto, traits: {} } }
  - { name: b, weighting: { policy: blend, blend: { pid: 0.5, ewma: 0.4 } } }
  - { name: c, weighting: { policy: pid, blend: { pid: 1 } } }
  - { name: d, weighting: { policy: auto } }
`);
    expect(problems).toEqual(
      expect.arrayContaining([
        '/clusters/0/lbPolicy: weighting.policy auto chooses the LB policy; remove lbPolicy',
        '/clusters/1/weighting/blend: fractions must sum to 1 (they sum to 0.9)',
        '/clusters/2/weighting/blend: only valid with weighting.policy blend',
        '/clusters/3/weighting/traits: weighting.policy auto needs the service traits',
      ]),
    );
    expect(problemsOf('clusters: [{ name: e, weighting: { policy: pid, setpoint: 1.5 } }]').join()).toContain('/clusters/0/weighting/setpoint');
  });

  it('slowStart: kept as written under ROUND_ROBIN (the default) and LEAST_REQUEST; refused elsewhere and with auto, naming the field', () => {
    const { catalog } = parseConfig(`
clusters:
  - { name: a, slowStart: { windowMs: 20000 } }
  - { name: b, lbPolicy: LEAST_REQUEST, slowStart: { windowMs: 5000, aggression: 0.5, minWeightPercent: 0 } }
  - { name: c, lbPolicy: LEAST_REQUEST }
`, 'slow.yaml');
    expect(catalog.clusters.map((c) => c.slowStart)).toEqual([{ windowMs: 20_000 }, { windowMs: 5_000, aggression: 0.5, minWeightPercent: 0 }, undefined]);
    expect(problemsOf(`
clusters:
  - { name: a, lbPolicy: RANDOM, slowStart: { windowMs: 20000 } }
  - { name: b, weighting: { policy: auto, traits: {} }, slowStart: { windowMs: 20000 } }
`)).toEqual([
      '/clusters/0/slowStart: only valid with lbPolicy ROUND_ROBIN or LEAST_REQUEST (is RANDOM)',
      '/clusters/1/slowStart: only valid with lbPolicy ROUND_ROBIN or LEAST_REQUEST, which weighting.policy auto does not set',
    ]);
    const problems = problemsOf(`
clusters:
  - { name: c, slowStart: { aggression: 1 } }
  - { name: d, slowStart: { windowMs: 1000, aggression: 0 } }
  - { name: e, slowStart: { windowMs: 1000, minWeightPercent: -1 } }
`);
    for (const at of ['/clusters/0/slowStart/windowMs', '/clusters/1/slowStart/aggression', '/clusters/2/slowStart/minWeightPercent'])
      expect(problems.some((p) => p.startsWith(`${at}:`)), `${at} in ${problems.join('\n')}`).toBe(true);
    expect(problemsOf('clusters: [{ name: f, slowStart: { windowMs: 1000, rampMs: 1 } }]')).toEqual(['/clusters/0/slowStart/rampMs: Unexpected property']);
  });

  it('names the file and reports YAML syntax errors', () => {
    try {
      parseConfig('clusters: [ { name: a', 'conf/fulcrum.yaml');
      expect.unreachable();
    } catch (err) {
      expect((err as Error).message).toMatch(/^conf\/fulcrum\.yaml: \/: YAML: /);
    }
  });

  it('rejects duplicate keys rather than silently taking the last one', () => {
    expect(problemsOf('clusters: []\nclusters: []').join()).toMatch(/YAML/);
  });
});

/** A fresh directory holding a config of one cluster, `a`. */
async function watchedFile(): Promise<{ dir: string; path: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'fulcrum-watch-'));
  const path = join(dir, 'fulcrum.yaml');
  await writeFile(path, 'clusters: [{ name: a }]\n');
  return { dir, path };
}

/**
 * A parser that, once `gated` is set, waits for a gate per parse (a large file's parse on its
 * worker thread); `gates` opens them in order, `inFlight`/`most` count parses running at once.
 */
function gatedParser() {
  const g = {
    gated: false,
    inFlight: 0,
    most: 0,
    gates: [] as (() => void)[],
    parse: async (text: string, file: string): Promise<LoadedConfig> => {
      g.inFlight++;
      g.most = Math.max(g.most, g.inFlight);
      if (g.gated) await new Promise<void>((open) => g.gates.push(open));
      g.inFlight--;
      return parseConfig(text, file);
    },
  };
  return g;
}

/** Writes as editors save: a whole new file renamed over the old one (no event sees it half written). */
async function save(path: string, text: string): Promise<void> {
  await writeFile(`${path}.tmp`, text);
  await rename(`${path}.tmp`, path);
}

/** A watcher on `path` (10 ms settle) recording every config applied and every error. */
function recordingWatcher(path: string): { watcher: ConfigWatcher; seen: LoadedConfig[]; errors: Error[] } {
  const seen: LoadedConfig[] = [];
  const errors: Error[] = [];
  return { watcher: new ConfigWatcher(path, { onConfig: (c) => seen.push(c), onInvalid: (e) => errors.push(e) }, 10), seen, errors };
}

describe('config watcher', () => {
  it('parses one edit at a time and applies edits in the order they were made', async () => {
    const { dir, path } = await watchedFile();
    // Each parse after start waits for its gate: a large file's parse on its worker thread.
    const p = gatedParser();
    const { gates } = p;
    const seen: string[] = [];
    const watcher = new ConfigWatcher(path, { onConfig: (c) => seen.push(c.catalog.clusters[0]?.name ?? ''), onInvalid: () => {} }, 10, p.parse);
    try {
      await watcher.start();
      p.gated = true;
      await save(path, 'clusters: [{ name: b }]\n');
      await waitFor(() => gates.length === 1, { what: 'the first edit being parsed' });
      await save(path, 'clusters: [{ name: c }]\n');
      // The second edit's events settle while the first parse runs: no second parse beside it.
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(gates).toHaveLength(1);
      gates[0]?.();
      await waitFor(() => gates.length === 2, { what: 'the second edit parsed after the first' });
      gates[1]?.();
      await waitFor(() => seen.length === 2, { what: 'both edits applied' });
      expect(seen).toEqual(['b', 'c']);
      expect(p.most).toBe(1);
    } finally {
      watcher.stop();
      for (const open of gates) open();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('an edit saved while the start parses the file (a large file: seconds) is applied, not left until the next edit', async () => {
    const { dir, path } = await watchedFile();
    const p = gatedParser();
    const seen: string[] = [];
    const watcher = new ConfigWatcher(path, { onConfig: (c) => seen.push(c.catalog.clusters[0]?.name ?? ''), onInvalid: () => {} }, 10, p.parse);
    try {
      p.gated = true;
      const starting = watcher.start();
      await waitFor(() => p.gates.length === 1, { what: 'the start parsing the file' });
      await save(path, 'clusters: [{ name: b }]\n');
      p.gated = false;
      p.gates[0]?.();
      expect((await starting).catalog.clusters.map((c) => c.name)).toEqual(['a']);
      await waitFor(() => seen.length === 1, { what: 'the edit made during the start applied' });
      expect(seen).toEqual(['b']);
    } finally {
      watcher.stop();
      for (const open of p.gates) open();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('tries a text again when its parse failed for a reason other than the document', async () => {
    const { dir, path } = await watchedFile();
    let failNext = false;
    const parse = async (text: string, file: string): Promise<LoadedConfig> => {
      if (failNext) {
        failNext = false;
        throw new Error('YAML parse failed: Worker terminated due to reaching memory limit');
      }
      return parseConfig(text, file);
    };
    const seen: string[] = [];
    const errors: Error[] = [];
    const watcher = new ConfigWatcher(path, { onConfig: (c) => seen.push(c.catalog.clusters[0]?.name ?? ''), onInvalid: (e) => errors.push(e) }, 10, parse);
    try {
      await watcher.start();
      failNext = true;
      await save(path, 'clusters: [{ name: b }]\n');
      await waitFor(() => errors.length === 1, { what: 'the failed parse reported' });
      // The same text saved again: read and parsed again, and applied this time.
      await save(path, 'clusters: [{ name: b }]\n');
      await waitFor(() => seen.length === 1, { what: 'the same text applied' });
      expect(seen).toEqual(['b']);
    } finally {
      watcher.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('applies nothing that finishes parsing after it stopped', async () => {
    const { dir, path } = await watchedFile();
    const p = gatedParser();
    const { gates } = p;
    const seen: LoadedConfig[] = [];
    const errors: Error[] = [];
    const watcher = new ConfigWatcher(path, { onConfig: (c) => seen.push(c), onInvalid: (e) => errors.push(e) }, 10, p.parse);
    try {
      await watcher.start();
      p.gated = true;
      await save(path, 'clusters: [{ name: b }]\n');
      await waitFor(() => gates.length === 1, { what: 'the edit being parsed' });
      watcher.stop();
      gates[0]?.();
      await new Promise((resolve) => setImmediate(resolve));
      expect(seen).toEqual([]);
      expect(errors).toEqual([]);
    } finally {
      watcher.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('applies valid edits, rejects invalid ones and keeps the last good config', async () => {
    const { dir, path } = await watchedFile();
    const { watcher, seen, errors } = recordingWatcher(path);
    try {
      const first = await watcher.start();
      expect(first.catalog.clusters.map((c) => c.name)).toEqual(['a']);

      await writeFile(path, 'clusters: [{ name: b }]\n');
      await waitFor(() => seen.length === 1, { what: 'edit applied' });
      expect(seen[0]?.catalog.clusters.map((c) => c.name)).toEqual(['b']);

      await writeFile(path, 'clusters: [{ name: c, lbPolicy: NOPE }]\n');
      await waitFor(() => errors.length === 1, { what: 'invalid edit rejected' });
      expect(errors[0]?.message).toContain(`${path}: /clusters/0/lbPolicy`);
      expect(seen).toHaveLength(1);

      // Editors often save by writing a temp file and renaming it over the original.
      await writeFile(`${path}.swp`, 'clusters: [{ name: d }]\n');
      await rename(`${path}.swp`, path);
      await waitFor(() => seen.length === 2, { what: 'rename-save applied' });
      expect(seen[1]?.catalog.clusters.map((c) => c.name)).toEqual(['d']);
    } finally {
      watcher.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  // A file written in place is first truncated (`>`, `cp`, an editor keeping the inode): empty, it
  // parses as an empty catalog, and applied it would delete every cluster the file defines from
  // every proxy until the writer's next chunk lands.
  it('an emptied file (a write in place, caught between truncate and write) keeps the last good config and says so', async () => {
    const { dir, path } = await watchedFile();
    const { watcher, seen, errors } = recordingWatcher(path);
    try {
      await watcher.start();
      await writeFile(path, '');
      await waitFor(() => errors.length === 1, { what: 'the emptied file reported' });
      expect(errors[0]?.message).toContain(`${path}: the file is empty`);
      expect(seen).toEqual([]);
      await writeFile(path, 'clusters: [{ name: b }]\n');
      await waitFor(() => seen.length === 1, { what: 'the written file applied' });
      expect(seen[0]?.catalog.clusters.map((c) => c.name)).toEqual(['b']);
      // Every cluster removed on purpose: said so in the file.
      await writeFile(path, 'clusters: []\n');
      await waitFor(() => seen.length === 2, { what: 'an explicitly empty catalog applied' });
    } finally {
      watcher.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  // A large file written in place lands in chunks: its first may hold only the opening comments,
  // which parse as an empty catalog just as an emptied file does.
  it('a file caught holding only comments and document markers keeps the last good config and says so', async () => {
    const { dir, path } = await watchedFile();
    const { watcher, seen, errors } = recordingWatcher(path);
    try {
      await watcher.start();
      await writeFile(path, '# fulcrum config, generated by deploy.sh\n\n---\n');
      await waitFor(() => errors.length + seen.length > 0, { what: 'the comment-only file read' });
      // Applied, it was an empty catalog: every cluster the file defines deleted.
      expect(seen.map((c) => c.catalog.clusters.length)).toEqual([]);
      expect(errors[0]?.message).toContain(`${path}: the file is empty`);
      await writeFile(path, '# fulcrum config, generated by deploy.sh\n---\nclusters: [{ name: b }] # the rest\n');
      await waitFor(() => seen.length === 1, { what: 'the written file applied' });
      expect(seen[0]?.catalog.clusters.map((c) => c.name)).toEqual(['b']);
    } finally {
      watcher.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a deleted file keeps the last good config and says so; the file written again is applied', async () => {
    const { dir, path } = await watchedFile();
    const { watcher, seen, errors } = recordingWatcher(path);
    try {
      await watcher.start();
      await rm(path);
      await waitFor(() => errors.length === 1, { what: 'the deleted file reported' });
      expect(errors[0]?.message).toContain(`${path}: the file is gone`);
      expect(seen).toEqual([]);
      await writeFile(path, 'clusters: [{ name: b }]\n');
      await waitFor(() => seen.length === 1, { what: 'the file written again applied' });
    } finally {
      watcher.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('applies an edit of a mounted ConfigMap: the kubelet swaps a `..data` symlink, the file itself is never touched', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fulcrum-watch-'));
    // The kubelet's atomic writer: fulcrum.yaml → ..data/fulcrum.yaml, ..data → a timestamped directory.
    const version = async (name: string, text: string): Promise<void> => {
      await mkdir(join(dir, name));
      await writeFile(join(dir, name, 'fulcrum.yaml'), text);
    };
    await version('..v1', 'clusters: [{ name: a }]\n');
    await symlink('..v1', join(dir, '..data'));
    await symlink('..data/fulcrum.yaml', join(dir, 'fulcrum.yaml'));
    const seen: LoadedConfig[] = [];
    const errors: Error[] = [];
    const watcher = new ConfigWatcher(join(dir, 'fulcrum.yaml'), { onConfig: (c) => seen.push(c), onInvalid: (e) => errors.push(e) }, 10);
    try {
      expect((await watcher.start()).catalog.clusters.map((c) => c.name)).toEqual(['a']);
      await version('..v2', 'clusters: [{ name: b }]\n');
      await symlink('..v2', join(dir, '..data_tmp'));
      await rename(join(dir, '..data_tmp'), join(dir, '..data'));
      await rm(join(dir, '..v1'), { recursive: true });
      await waitFor(() => seen.length === 1, { what: 'the ConfigMap edit applied' });
      expect(seen[0]?.catalog.clusters.map((c) => c.name)).toEqual(['b']);
      expect(errors).toEqual([]);
    } finally {
      watcher.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
