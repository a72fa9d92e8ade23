import { SLOW_START_POLICIES, type LbPolicy, type SlowStartConfig } from '../../catalog/types.js';
import { SlowStartSchema } from '../config-schema.js';
import { annotationBlock } from './annotation-block.js';

/**
 * `fulcrum.io/slow-start`: Envoy's slow start for a discovered cluster, as the config file's
 * `slowStart` sets it for a stored one. A window, e.g. `30s` (`ms`, `s`, `m` or `h`; Envoy's default
 * aggression and floor), or the config file's block as JSON or flow YAML, e.g.
 * `{windowMs: 30000, aggression: 2, minWeightPercent: 5}`, validated by the config file's own schema;
 * `off` for none. Only under ROUND_ROBIN and LEAST_REQUEST (Envoy applies it under no other policy).
 * Like the other annotations, a value fulcrum does not take is a warning and the cluster gets no slow
 * start: one Service's typo must not fail the discovery, nor reach Envoy (which would NACK the update).
 */
export const SLOW_START_ANNOTATION = 'fulcrum.io/slow-start';

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };
/** The config file's bound (a day), read from its schema so the two cannot drift. */
const MAX_WINDOW_MS = SlowStartSchema.properties.windowMs.maximum as number;

export function slowStartOf(annotations: Readonly<Record<string, string>>, lbPolicy: LbPolicy, warn: (m: string) => void): SlowStartConfig | undefined {
  const raw = annotations[SLOW_START_ANNOTATION];
  if (raw === undefined) return undefined;
  const value = raw.trim();
  if (value.toLowerCase() === 'off') return undefined;
  const parsed = value.startsWith('{') ? blockOf(value) : windowOf(value);
  if (typeof parsed === 'string') {
    warn(`annotation ${SLOW_START_ANNOTATION}=${JSON.stringify(raw)}: ${parsed}; no slow start`);
    return undefined;
  }
  if (!(SLOW_START_POLICIES as readonly string[]).includes(lbPolicy)) {
    warn(`annotation ${SLOW_START_ANNOTATION} needs lb-policy ${SLOW_START_POLICIES.join(' or ')} (is ${lbPolicy}); no slow start`);
    return undefined;
  }
  return parsed;
}

/** `30s` → { windowMs: 30000 }, or why not. */
function windowOf(value: string): SlowStartConfig | string {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/i.exec(value);
  if (!m) return 'expected a window such as 30s (ms, s, m or h), a {windowMs, aggression, minWeightPercent} block, or off';
  const windowMs = Number(m[1]) * (UNIT_MS[(m[2] as string).toLowerCase()] as number);
  if (!(Number.isInteger(windowMs) && windowMs >= 1 && windowMs <= MAX_WINDOW_MS)) return `the window must be a whole number of ms from 1 to ${MAX_WINDOW_MS} (24h)`;
  return { windowMs };
}

/** The config file's slowStart block (its schema admits no other field), or why not. */
function blockOf(text: string): SlowStartConfig | string {
  const read = annotationBlock(text, SlowStartSchema);
  return 'problem' in read ? read.problem : (read.block as SlowStartConfig);
}
