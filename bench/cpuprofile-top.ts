/**
 * Sums a V8 .cpuprofile by function: self and inclusive ms, optionally only the samples under a
 * frame named `--under` (e.g. tickCluster, so a bench's feed phase does not count).
 *
 *   npx tsx bench/cpuprofile-top.ts FILE.cpuprofile [--under tickCluster] [--top 30]
 *
 * Not a test.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { Profile, ProfileNode } from './cpuprofile.js';
import { helpIfAsked } from './help.js';

helpIfAsked(import.meta.url);
// A reader that stops early (`| head`) is not an error: it crashed with EPIPE instead.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code !== 'EPIPE') throw e;
  process.exit(0);
});
const { values: args, positionals } = parseArgs({
  options: { under: { type: 'string', default: '' }, top: { type: 'string', default: '30' } },
  allowPositionals: true,
});
const file = positionals[0];
if (file === undefined) throw new Error('usage: npx tsx bench/cpuprofile-top.ts FILE.cpuprofile [--under NAME] [--top N]');
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const label = (n: ProfileNode): string => `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.split('/').slice(-2).join('/')}`;

/** Each sampled node's stack, root first. */
function stackOf(id: number): ProfileNode[] {
  const out: ProfileNode[] = [];
  for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) out.push(byId.get(at) as ProfileNode);
  return out.reverse();
}

const self = new Map<string, number>();
const inclusive = new Map<string, number>();
let total = 0;
profile.samples.forEach((id, k) => {
  const ms = (profile.timeDeltas[k] ?? 0) / 1000;
  let stack = stackOf(id);
  if (args.under !== '') {
    const from = stack.findIndex((n) => n.callFrame.functionName === args.under);
    if (from < 0) return;
    stack = stack.slice(from);
  }
  total += ms;
  const leaf = stack[stack.length - 1] as ProfileNode;
  self.set(label(leaf), (self.get(label(leaf)) ?? 0) + ms);
  for (const name of new Set(stack.map(label))) inclusive.set(name, (inclusive.get(name) ?? 0) + ms);
});

const top = Number(args.top);
const table = (title: string, m: Map<string, number>): void => {
  process.stdout.write(`${title} (of ${total.toFixed(0)} ms${args.under === '' ? '' : ` under ${args.under}`})\n`);
  for (const [name, ms] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    process.stdout.write(`${ms.toFixed(1).padStart(9)} ms ${((100 * ms) / total).toFixed(1).padStart(5)} %  ${name}\n`);
  }
};
table('self', self);
table('inclusive', inclusive);
