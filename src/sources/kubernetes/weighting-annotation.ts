import YAML from 'yaml';
import type { WeightingPolicy } from '../../catalog/types.js';
import { toWeighting } from '../config-file.js';
import { WeightingSchema } from '../config-schema.js';
import { annotationBlock } from './annotation-block.js';

/**
 * `fulcrum.io/weighting`: how a discovered cluster's endpoint weights are computed. Either a
 * policy name — `static` (default), `pid` (setpoint mean, metric cpu), `ewma`, `adaptive` (the
 * same as pid) — or, for every option the config file has, the config file's `weighting:` block
 * as JSON or flow YAML, e.g. `{policy: pid, setpoint: 0.6, metric: inflight, gains: {kp: 0.5}}`,
 * validated by the config file's own schema. An invalid value falls back to static with a
 * warning that names the problem.
 */
export const WEIGHTING_ANNOTATION = 'fulcrum.io/weighting';

const NAMED: Readonly<Record<string, WeightingPolicy>> = {
  static: { kind: 'static' },
  pid: { kind: 'pid', setpoint: 'mean', metric: 'cpu' },
  adaptive: { kind: 'pid', setpoint: 'mean', metric: 'cpu' },
  ewma: { kind: 'ewma' },
};

export function weightingOf(annotations: Readonly<Record<string, string>>, where: string, warnings: string[]): WeightingPolicy {
  const raw = annotations[WEIGHTING_ANNOTATION];
  if (raw === undefined) return { kind: 'static' };
  const value = raw.trim();
  const problem = value.startsWith('{') ? blockProblem(value) : NAMED[value.toLowerCase()] ? undefined : 'not a policy name';
  if (problem === undefined) return value.startsWith('{') ? toWeighting(YAML.parse(value) as Parameters<typeof toWeighting>[0]) : (NAMED[value.toLowerCase()] as WeightingPolicy);
  warnings.push(
    `${where}: annotation ${WEIGHTING_ANNOTATION}=${JSON.stringify(raw)}: ${problem}; expected one of ${Object.keys(NAMED).join(', ')} ` +
      `or a weighting block such as {policy: pid, setpoint: 0.6, metric: cpu}; using static`,
  );
  return { kind: 'static' };
}

/** Why a `{...}` annotation is not a valid weighting block, or undefined when it is. */
function blockProblem(text: string): string | undefined {
  const read = annotationBlock(text, WeightingSchema);
  if ('problem' in read) return read.problem;
  const w = read.block as { policy: string; blend?: { pid?: number; ewma?: number; static?: number } };
  if (w.policy === 'auto') return 'policy auto needs the service traits and chooses the LB policy: use it in the config file';
  if (w.policy === 'blend') {
    const total = (w.blend?.pid ?? 0) + (w.blend?.ewma ?? 0) + (w.blend?.static ?? 0);
    if (Math.abs(total - 1) > 1e-6) return `blend fractions must sum to 1 (they sum to ${total})`;
  }
  return undefined;
}
