import { readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { describe, expect, it, vi } from 'vitest';
import { ConfigError, parseConfig, parseConfigOffThread, parseConfigValue, parseConfigValueInTurns } from '../../src/sources/config-file.js';
import { MAX_CLUSTERS } from '../../src/sources/config-schema.js';
import { parseYamlOffThread } from '../../src/sources/yaml-off-thread.js';
import { parseYaml } from '../../src/sources/yaml-parse.js';
import { waitFor } from '../support/wait.js';

/** Scalars and structures whose reading differs between YAML parsers or versions (1.1 vs 1.2). */
const TRICKY = `
octal: 0o17
legacyOctal: 017
hex: 0x1F
float: 1e3
inf: -.inf
nan: .NaN
nulls: [~, null, Null, ]
bools: [true, True, yes, no, on, off]
strings: ['0x10', "tab\\tand \\u00e9", plain text, 2026-12-05]
anchored: &a { x: 1 }
aliased: *a
merge: { <<: *a, y: 2 }
block: |
  two
  lines
folded: >-
  one
  line
`;

describe('parseYamlOffThread', () => {
  it('reads on a worker exactly what the inline parse reads: the same value, the same errors', async () => {
    // offThreadChars -1: even the empty document goes to the worker.
    for (const text of [TRICKY, await readFile('examples/fulcrum.yaml', 'utf8'), '', '# only a comment\n']) {
      expect(await parseYamlOffThread(text, 50, -1)).toStrictEqual(parseYaml(text, 50));
    }
    for (const bad of ['a: 1\na: 2\n', 'a: [1, 2\n', 'a: b: c\n', '---\na: 1\n---\nb: 2\n', 'x: *missing\n']) {
      const inline = parseYaml(bad, 50);
      expect('errors' in inline, bad).toBe(true);
      expect(await parseYamlOffThread(bad, 50, 0)).toEqual(inline);
    }
  });

  it('keeps at most maxErrors error lines', async () => {
    const text = Array.from({ length: 20 }, (_, i) => `k${i % 2}: ${i}`).join('\n');
    const off = await parseYamlOffThread(text, 3, 0);
    expect(off).toEqual(parseYaml(text, 3));
    expect('errors' in off && off.errors.length).toBe(3);
  });

  it('leaves the event loop free while a large document is parsed', async () => {
    const lines = ['clusters:'];
    for (let c = 0; c < 100; c++) {
      lines.push(`  - name: c${c}`, '    endpoints:');
      for (let e = 0; e < 100; e++) lines.push(`      - { address: 10.0.${c}.${e + 1}, port: 8080, weight: 1 }`);
    }
    const text = `${lines.join('\n')}\n`;
    const busy = async (run: () => unknown): Promise<number> => {
      const before = performance.eventLoopUtilization();
      await run();
      return performance.eventLoopUtilization(before).active;
    };
    const inline = await busy(() => parseConfig(text, 'big.yaml'));
    const off = await busy(() => parseConfigOffThread(text, 'big.yaml'));
    const offConfig = await parseConfigOffThread(text, 'big.yaml');
    expect(offConfig).toEqual(parseConfig(text, 'big.yaml'));
    // The loop does the copy of the value and the validation, not the parse.
    expect(off).toBeLessThan(inline / 2);
  });

  it('sends a long list of clusters in pieces, each asked for in a turn of its own, and puts the value back together', async () => {
    const lines = ['__proto__: { polluted: true }', 'server: { logLevel: warn }', 'clusters:'];
    for (let c = 0; c < 60; c++) {
      lines.push(`  - name: c${c}`, '    endpoints:');
      for (let e = 0; e < 50; e++) lines.push(`      - { address: 10.0.${c}.${e + 1}, port: 8080 }`);
    }
    lines.push('listeners: []');
    const text = `${lines.join('\n')}\n`;
    const asks = vi.spyOn(Worker.prototype, 'postMessage');
    try {
      const off = await parseYamlOffThread(text, 50, 0);
      expect(off).toStrictEqual(parseYaml(text, 50));
      // 3,000 endpoints in pieces of ~1,000: the head, then each piece once asked for.
      expect(asks.mock.calls.length).toBeGreaterThanOrEqual(3);
    } finally {
      asks.mockRestore();
    }
  });

  it('ends its worker once the answer is in, whatever the document holds', async () => {
    const on = vi.spyOn(Worker.prototype, 'on');
    try {
      for (const text of ['clusters: []\n', 'clusters: [{ name: a }]\n', 'listeners: []\n', 'clusters: [1, null, x]\n']) {
        await parseYamlOffThread(text, 50, 0);
      }
      const workers = new Set(on.mock.contexts as Worker[]);
      expect(workers.size).toBe(4);
      // A worker left running (waiting for a request for pieces that never comes) keeps its id.
      await waitFor(() => [...workers].every((w) => w.threadId === -1), { what: 'every parse worker ended', timeoutMs: 20_000 });
    } finally {
      on.mockRestore();
    }
  });

  it('reports a large invalid document as a ConfigError, as the inline parse does', async () => {
    const text = `${'# padding\n'.repeat(10_000)}clusters: [{ name: a }]\nclusters: []\n`;
    const inline = (() => {
      try {
        parseConfig(text, 'f.yaml');
      } catch (err) {
        return err;
      }
      return undefined;
    })();
    expect(inline).toBeInstanceOf(ConfigError);
    const off = await parseConfigOffThread(text, 'f.yaml').catch((err: unknown) => err);
    expect(off).toBeInstanceOf(ConfigError);
    expect((off as ConfigError).problems).toEqual((inline as ConfigError).problems);
  });
});

describe('parseConfigOffThread', () => {
  it('gives what parseConfig gives for documents with unusual keys, tags and versions', async () => {
    const texts = [
      'clusters: [{ name: a }]\n__proto__: { polluted: true }\n',
      'clusters: [{ name: a, __proto__: { lbPolicy: RING_HASH } }]\n',
      '%YAML 1.1\n---\nclusters: [{ name: a, endpoints: [{ address: 10.0.0.1, port: 0o17 }] }]\n',
      'clusters: !!set { a }\n',
      'clusters: [{ name: !!binary aGVsbG8= }]\n',
      'clusters: [{ name: 2026-12-05 }]\n',
    ];
    for (const text of texts) {
      const outcome = (run: () => unknown): unknown => {
        try {
          return { config: run() };
        } catch (err) {
          return { problems: (err as ConfigError).problems ?? (err as Error).message };
        }
      };
      const off = await parseConfigOffThread(text, 'f.yaml', -1).then(
        (config) => ({ config }),
        (err: unknown) => ({ problems: (err as ConfigError).problems ?? (err as Error).message }),
      );
      expect(off, text).toStrictEqual(outcome(() => parseConfig(text, 'f.yaml')));
    }
  });

  it('stops its worker when aborted', async () => {
    const text = `clusters:\n${'  - { name: x }\n'.repeat(50_000)}`;
    const stop = new AbortController();
    const parsing = parseConfigOffThread(text, 'big.yaml', undefined, stop.signal);
    stop.abort(new Error('stopped'));
    await expect(parsing).rejects.toThrow('stopped');
    await expect(parseConfigOffThread(text, 'big.yaml', undefined, stop.signal)).rejects.toThrow('stopped');
  });
});

describe('parseConfig', () => {
  it('reports an alias without its anchor and an alias bomb as the document\'s problems, naming the file', async () => {
    const bomb = ['a: &a [x, x, x, x, x, x, x, x, x, x]', ...'bcdefgh'.split('').map((k, i) => `${k}: &${k} [${Array(10).fill(`*${'abcdefgh'[i]}`).join(', ')}]`), 'clusters: []'].join('\n');
    for (const text of ['clusters: *missing\n', bomb]) {
      expect(() => parseConfig(text, 'f.yaml')).toThrow(ConfigError);
      expect(() => parseConfig(text, 'f.yaml')).toThrow(/^f\.yaml: \/: YAML: /);
      await expect(parseConfigOffThread(text, 'f.yaml', 0)).rejects.toThrow(/^f\.yaml: \/: YAML: /);
    }
  });
});

describe('parseConfigValueInTurns', () => {
  const outcome = async (run: () => unknown): Promise<unknown> => {
    try {
      return { config: await run() };
    } catch (err) {
      return { problems: (err as ConfigError).problems ?? (err as Error).message };
    }
  };
  const doc = (clusters: unknown[], rest: Record<string, unknown> = {}): Record<string, unknown> => ({ ...rest, clusters });
  const ok = (i: number): Record<string, unknown> => ({ name: `c${i}`, endpoints: [{ address: `10.0.0.${i + 1}`, port: 80 }] });

  it('gives what parseConfigValue gives, valid or not, taking turns between clusters', async () => {
    const docs: unknown[] = [
      doc([ok(0), ok(1), ok(2)], { listeners: [{ name: 'in', port: 10000, routes: [{ prefix: '/', cluster: 'c1' }] }] }),
      // A schema problem in one cluster, in the rest of the document, a semantic one, a reference.
      doc([ok(0), { name: 'c1', endpoints: [{ address: '10.0.0.1', port: 'x' }] }, ok(2)]),
      doc([ok(0)], { server: { logLevel: 'loud' } }),
      doc([ok(0), ok(0)]),
      doc([ok(0)], { listeners: [{ name: 'in', port: 10000, routes: [{ prefix: '/', cluster: 'nope' }] }] }),
      doc([ok(0)], { unknown: true }),
      { clusters: 'none' },
      [],
      null,
    ];
    for (const raw of docs) {
      let turns = 0;
      const stepped = await outcome(() => parseConfigValueInTurns(raw, 'f.yaml', async () => void turns++));
      expect(stepped, JSON.stringify(raw)).toStrictEqual(await outcome(() => parseConfigValue(raw, 'f.yaml')));
      if (raw === docs[0]) expect(turns).toBeGreaterThanOrEqual(3);
    }
  });

  it('refuses more clusters than the schema allows, as the whole check does', async () => {
    const raw = doc(Array.from({ length: MAX_CLUSTERS + 1 }, () => ({ name: 'x' })));
    const stepped = await outcome(() => parseConfigValueInTurns(raw, 'f.yaml', async () => undefined));
    expect(stepped).toStrictEqual(await outcome(() => parseConfigValue(raw, 'f.yaml')));
    expect(JSON.stringify(stepped)).toContain('/clusters');
  });
});
