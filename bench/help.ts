import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * `--help` / `-h` for a bench script whose usage is its leading doc comment: prints that comment
 * and exits 0. Called before the script's strict parseArgs, which otherwise refuses the option with
 * a stack trace (issue 13 found `bench/fanout.ts --help` crashing; eleven scripts still did).
 */
export function helpIfAsked(scriptUrl: string, argv: readonly string[] = process.argv.slice(2)): void {
  if (!argv.includes('--help') && !argv.includes('-h')) return;
  process.stdout.write(`${usageOf(readFileSync(fileURLToPath(scriptUrl), 'utf8'))}\n\n  -h, --help  this text\n`);
  process.exit(0);
}

/** The first doc comment of a source text, without its comment markers. */
export function usageOf(source: string): string {
  const doc = /\/\*\*([\s\S]*?)\*\//.exec(source)?.[1] ?? '';
  return doc
    .split('\n')
    .map((line) => line.replace(/^\s*\* ?/, ''))
    .join('\n')
    .trim();
}

/** An integer command-line option of at least `min` (a bench's --clusters, --reads, ...), or a RangeError naming it. */
export function intOption(name: string, value: string | undefined, min = 1): number {
  const n = Number(value);
  if (!(Number.isInteger(n) && n >= min)) throw new RangeError(`--${name} must be an integer >= ${min}, got ${String(value)}`);
  return n;
}
