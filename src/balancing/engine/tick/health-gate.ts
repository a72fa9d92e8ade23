/**
 * Stage 1, the health gate: operator state, then each endpoint's HealthTracker (active probes),
 * then the fleet outlier detector's ejections. Missing data is not ill health: an endpoint nobody
 * probed is AVAILABLE. If nothing eligible would serve, fail static: every eligible endpoint is
 * published HEALTHY at its static weight, because an empty cluster is worse than any weight.
 */
import type { EndpointState } from '../state.js';
import { isOperatorDisabled } from '../stages.js';
import { H_DISABLED, HEALTH_CODES, mark, ruleBit, type Frame } from './frame.js';

const R_OPERATOR = ruleBit('operator-unhealthy');
const R_PROBE = ruleBit('probe-unhealthy');
const R_EJECTED = ruleBit('ejected');
const R_FAIL_STATIC = ruleBit('fail-static');

export function gateHealth(f: Frame, eps: readonly EndpointState[]): void {
  let eligible = 0;
  let serving = 0;
  for (let i = 0; i < f.n; i++) {
    const e = eps[i] as EndpointState;
    if (isOperatorDisabled(e.operatorHealth)) {
      f.healthCode[i] = H_DISABLED;
      mark(f, i, R_OPERATOR);
      continue;
    }
    eligible++;
    const st = e.tracker.state(f.now);
    f.healthCode[i] = HEALTH_CODES.indexOf(st);
    if (st !== 'AVAILABLE') mark(f, i, R_PROBE);
    else if (e.ejection.until !== undefined) {
      mark(f, i, R_EJECTED);
      f.ejections ??= new Array<undefined>(f.n).fill(undefined);
      f.ejections[i] = { reason: e.ejection.reason, until: e.ejection.until, count: e.ejection.count };
    } else {
      f.serving[i] = 1;
      serving++;
    }
  }
  f.failStatic = eligible > 0 && serving === 0;
  if (!f.failStatic) return;
  for (let i = 0; i < f.n; i++) {
    if (f.healthCode[i] === H_DISABLED) continue;
    f.serving[i] = 1;
    f.rules[i] = R_FAIL_STATIC;
  }
}
