import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli, type CliDeps } from '../../src/cli/run.js';
import { SERVE_ENV, SERVE_FLAGS, serveFlags, type ServeFlags } from '../../src/cli/serve-flags.js';
import { formatTable } from '../../src/cli/table.js';

/** The command line without a server: parsing, validation, help, check; `serve` is recorded, not run. */
function harness(env: CliDeps['env'] = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const served: ServeFlags[] = [];
  const deps: CliDeps = { env, write: (t) => void out.push(t), error: (t) => void err.push(t), serve: async (f) => void served.push(f) };
  return { run: (...argv: string[]) => runCli(argv, deps), out: () => out.join(''), err: () => err.join(''), served };
}

describe('fulcrum serve flags', () => {
  it('serve is the default command; flags override their environment variables', async () => {
    const h = harness({ FULCRUM_DATA_DIR: '/var/lib/f', FULCRUM_LOG_LEVEL: 'debug', FULCRUM_CONFIG: 'env.yaml' });
    expect(await h.run('--xds-port', '0', '--log-level', 'warn')).toBe('keep-running');
    expect(h.served).toEqual([{ config: 'env.yaml', dataDir: '/var/lib/f', xdsPort: 0, logLevel: 'warn', trimNativeMemory: true }]);
    expect(await h.run('serve', '-c', 'x.yaml', '--data-dir', 'd', '--admin-port', '65535', '--log-format', 'pretty')).toBe('keep-running');
    expect(h.served[1]).toEqual({ config: 'x.yaml', dataDir: 'd', adminPort: 65_535, logLevel: 'debug', logFormat: 'pretty', trimNativeMemory: true });
  });

  it('--trim-native-memory off, or its environment variable, turns the trimming off', async () => {
    const h = harness({ FULCRUM_TRIM_NATIVE_MEMORY: 'off' });
    await h.run();
    await h.run('--trim-native-memory', 'on');
    expect(h.served.map((f) => f.trimNativeMemory)).toEqual([false, true]);
  });

  it.each([
    [['--xds-port', 'abc'], '--xds-port: expected a port number 0-65535, got "abc"'],
    [['--admin-port', '65536'], '--admin-port: expected a port number 0-65535, got "65536"'],
    [['--xds-port', '-1'], "Option '--xds-port' argument is ambiguous"],
    [['--xds-port', '1e3'], 'got "1e3"'],
    [['--log-format', 'xml'], '--log-format: expected one of json, pretty, got "xml"'],
    [['--trim-native-memory', 'yes'], '--trim-native-memory: expected one of on, off, got "yes"'],
    [['--xds-address', ' '], '--xds-address: expected an IP address or host name'],
    [['--nope'], "Unknown option '--nope'"],
  ])('%j fails with exit 2 before serving, naming the flag', async (argv, message) => {
    const h = harness();
    expect(await h.run(...argv)).toBe(2);
    expect(h.err()).toContain(message);
    expect(h.err()).toContain("Run 'fulcrum --help' for usage.");
    expect(h.served).toEqual([]);
  });

  it('an invalid value from the environment is named too', () => {
    expect(() => serveFlags({}, { FULCRUM_LOG_FORMAT: 'yaml' })).toThrow('--log-format: expected one of json, pretty, got "yaml"');
  });

  it('--help lists every flag, its environment variable and default; serve --help only serve', async () => {
    const h = harness();
    expect(await h.run('--help')).toBe(0);
    for (const f of SERVE_FLAGS) {
      expect(h.out()).toContain(`--${f.flag} ${f.value}`);
      expect(h.out()).toContain(`default: ${f.default}`);
      if (f.env) expect(h.out()).toContain(`[env ${f.env}]`);
    }
    for (const [name] of SERVE_ENV) expect(h.out()).toContain(name);
    for (const c of ['status', 'proxies', 'weights <cluster>', 'config-dump', 'check', 'version', 'FULCRUM_ADMIN_URL']) expect(h.out()).toContain(c);
    const s = harness();
    expect(await s.run('serve', '--help')).toBe(0);
    expect(s.out()).toContain('--xds-port');
    expect(s.out()).not.toContain('config-dump');
  });

  it('version, --version and unknown commands', async () => {
    const h = harness();
    expect(await h.run('version')).toBe(0);
    expect(h.out()).toMatch(/^fulcrum \d+\.\d+\.\d+ \(node v\d+/);
    expect(await h.run('--version')).toBe(0);
    expect(await h.run('frobnicate')).toBe(2);
    expect(h.err()).toContain('unknown command "frobnicate"');
    expect(await h.run('weights')).toBe(2);
    expect(h.err()).toContain('expected exactly one cluster name');
    expect(await h.run('proxies', '-o', 'yaml')).toBe(2);
    expect(h.err()).toContain('--output: expected table or json, got "yaml"');
  });
});

describe('fulcrum check', () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('exit 0 with a summary for a valid file, 1 with the path and reason for an invalid one', async () => {
    dir = await mkdtemp(join(tmpdir(), 'fulcrum-check-'));
    const good = join(dir, 'good.yaml');
    const bad = join(dir, 'bad.yaml');
    await writeFile(good, 'clusters: [{ name: a }, { name: b }]\n');
    await writeFile(bad, 'clusters: [{ name: a, endpoints: [{ address: 10.0.0.1, port: 0 }] }]\n');
    const h = harness();
    expect(await h.run('check', '--config', good)).toBe(0);
    expect(h.out()).toContain(`${good}: valid (2 clusters, 0 listeners`);
    expect(await h.run('check', '--config', bad)).toBe(1);
    expect(h.err()).toContain(`${bad}: /clusters/0/endpoints/0/port: Expected integer to be greater or equal to 1`);
    expect(await h.run('check', join(dir, 'missing.yaml'))).toBe(1);
    expect(h.err()).toContain('cannot read');
    const j = harness();
    expect(await j.run('check', '-c', good, '-o', 'json')).toBe(0);
    expect(JSON.parse(j.out())).toMatchObject({ valid: true, clusters: 2, xds: '127.0.0.1:18000' });
    expect(await harness().run('check')).toBe(2);
  });

  it('a file holding no config (blank or only comments) is invalid, as serve refuses it; "clusters: []" is an empty config', async () => {
    dir = await mkdtemp(join(tmpdir(), 'fulcrum-check-'));
    const empty = join(dir, 'empty.yaml');
    await writeFile(empty, '# fulcrum config\n');
    const h = harness();
    expect(await h.run('check', empty)).toBe(1);
    expect(h.err()).toContain(`${empty}: the file holds no config`);
    await writeFile(empty, 'clusters: []\n');
    expect(await harness().run('check', empty)).toBe(0);
  });

  it('more than one file (`fulcrum check *.yaml`) is a usage error, not a check of the first alone', async () => {
    dir = await mkdtemp(join(tmpdir(), 'fulcrum-check-'));
    const good = join(dir, 'good.yaml');
    const bad = join(dir, 'bad.yaml');
    await writeFile(good, 'clusters: [{ name: a }]\n');
    await writeFile(bad, 'clusters: [{ name: a, lbPolicy: NOPE }]\n');
    for (const argv of [[good, bad], ['--config', good, bad]]) {
      const h = harness();
      expect(await h.run('check', ...argv)).toBe(2);
      expect(h.err()).toContain('fulcrum check: expected one config file');
    }
  });
});

describe('formatTable', () => {
  it('aligns columns two spaces apart with no trailing blanks', () => {
    expect(formatTable(['A', 'LONG'], [['xx', 'y'], ['z', '']])).toBe('A   LONG\nxx  y\nz\n');
  });
});
