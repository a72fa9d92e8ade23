import { describe, it, expect } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as balancing from '../../src/balancing/index.js';
import { ManualClock } from '../../src/balancing/clock.js';

const roomDir = fileURLToPath(new URL('../../src/balancing/', import.meta.url));
const sources = readdirSync(roomDir)
  .filter((f) => f.endsWith('.ts'))
  .map((f) => ({ file: f, text: readFileSync(roomDir + f, 'utf8') }));
// Comments may mention clocks (clock.ts explains what to inject); only code must not use them.
const code = (text: string): string => text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');

describe('the balancing room', () => {
  it('imports only its own files and node:crypto (pure computation)', () => {
    for (const { file, text } of sources) {
      for (const [, spec] of text.matchAll(/\bfrom\s+'([^']+)'/g)) {
        expect(spec === 'node:crypto' || /^\.\/[a-z0-9-]+\.js$/.test(spec as string), `${file} imports ${spec}`).toBe(true);
      }
    }
  });

  it('reads no clock, timer or randomness: time arrives as arguments', () => {
    for (const { file, text } of sources) {
      expect(code(text), file).not.toMatch(/Date\.now|new Date\(|performance\.now|setTimeout|setInterval|Math\.random|process\./);
    }
  });

  it('exports every algorithm from index.ts', () => {
    for (const name of [
      'RoundRobin',
      'SmoothWeightedRoundRobin',
      'HashRing',
      'LeastConnections',
      'EwmaLatency',
      'PidController',
      'HealthTracker',
      'toIntegerWeights',
      'toIntegerWeightGroups',
      'murmur3Hash32',
      'md5Hash32',
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
