import { describe, it, expect } from 'vitest';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import * as balancing from '../../src/balancing/index.js';
import { ManualClock } from '../../src/balancing/clock.js';
import { describePureRoom, impureUses, loadedModules, roomFiles } from '../support/purity.js';

const roomDir = fileURLToPath(new URL('../../src/balancing/', import.meta.url));

// Recursive: src/balancing/engine/ (the weight engine) is the code that most claims to be pure.
// The one module it loads from outside: the domain module of weighting policies, pure itself.
const POLICY_MODULE = '../../catalog/policy.js';
describePureRoom('balancing', roomDir, { builtins: [POLICY_MODULE] });

describe('the policy module the engine loads (src/catalog/policy.ts) is pure', () => {
  const file = fileURLToPath(new URL('../../src/catalog/policy.ts', import.meta.url));
  const [source] = roomFiles(fileURLToPath(new URL('../../src/catalog/', import.meta.url))).filter((f) => f.absolute === file).map((f) => f.source);
  it('loads nothing and reads no clock, timer or randomness', () => {
    expect(source).toBeDefined();
    expect(loadedModules(source as ts.SourceFile)).toEqual([]);
    expect(impureUses(source as ts.SourceFile)).toEqual([]);
  });
});

describe('the purity check itself', () => {
  const parse = (text: string): ts.SourceFile => ts.createSourceFile('x.ts', text, ts.ScriptTarget.ES2022, true);

  it('reads the engine folder, not only the top level', () => {
    expect(roomFiles(roomDir).some((f) => f.file.startsWith('engine/'))).toBe(true);
  });

  it('sees value imports, re-exports and dynamic loads, and ignores type-only ones', () => {
    const source = parse(
      [
        "import type { A } from '../catalog/types.js';",
        "export type { B } from 'node:fs';",
        "import { c } from '../xds/cache.js';",
        "export * from 'node:http';",
        "const d = await import('node:net');",
      ].join('\n'),
    );
    expect(loadedModules(source).map((m) => m.specifier)).toEqual(['../xds/cache.js', 'node:http', 'node:net']);
  });

  it('flags clocks, timers and randomness in code, not in comments or property names', () => {
    const source = parse(
      [
        '// Date.now() is not called here, setTimeout neither',
        'const t = Date.now();',
        'const d = new Date();',
        'setTimeout(() => 0, 1);',
        'const r = Math.random();',
        'const o = { setTimeout: 1, process: 2 };',
        'o.process;',
      ].join('\n'),
    );
    expect(impureUses(source).map((u) => u.replace(/ \(line \d+\)/, ''))).toEqual(['Date.now', 'new Date', 'setTimeout', 'Math.random']);
  });
});

describe('the balancing room', () => {
  it('exports every algorithm from index.ts', () => {
    for (const name of [
      'EwmaLatency',
      'PidController',
      'HealthTracker',
      'toIntegerWeights',
      'toIntegerWeightGroups',
      'ManualClock',
    ]) {
      expect(balancing, name).toHaveProperty(name);
    }
  });

  it('ManualClock moves only when told, never backwards', () => {
    const clock = new ManualClock(100);
    expect(clock.now()).toBe(100);
    clock.advance(50);
    expect(clock.now()).toBe(150);
    expect(() => clock.advance(-1)).toThrow(RangeError);
  });
});
