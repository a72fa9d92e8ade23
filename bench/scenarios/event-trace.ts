/**
 * What --detail prints around a scenario's events, every 250 ms from 1 s before to 6 s after:
 * the event's backend's requests in flight (as the backend counts them), Envoy's view of it
 * (requests active, health flags, weight), fulcrum's (published health, integer weight, ejection,
 * error rate, the rules that applied) and the requests that failed, by when they were sent. A death's loss can then be
 * told apart: in flight at the kill, sent after it until the endpoint left, or at the revival.
 * Envoy's retry and outlier counters say why (retries refused by the budget, ejections).
 */
import type { Sample } from './figures.js';

/** One reading of the event's backend; fields absent when that side had nothing to say. */
export interface TracePoint {
  /** Seconds since the load started. */
  readonly t: number;
  readonly inFlight: number;
  readonly envoy?: { readonly readS: number; readonly rqActive: number; readonly health: string; readonly weight: number; readonly counters: string };
  readonly fulcrum?: { readonly health: string; readonly weight: number; readonly ejected: boolean; readonly errorRate: number | undefined; readonly rules: string; readonly all: string };
}

const STEP_S = 0.25;
const BEFORE_S = 1;
const AFTER_S = 6;

const failedBetween = (samples: readonly Sample[], from: number, to: number): number => samples.filter((x) => x.outcome !== 'ok' && x.sentS >= from && x.sentS < to).length;

function describe(p: TracePoint): string {
  const e = p.envoy === undefined ? 'envoy ?' : `envoy (read at ${p.envoy.readS.toFixed(2)} s) active ${p.envoy.rqActive} ${p.envoy.health} w${p.envoy.weight} ${p.envoy.counters}`;
  const f = p.fulcrum;
  const fu = f === undefined ? 'fulcrum ?' : `fulcrum ${f.health} w${f.weight}${f.ejected ? ' EJECTED' : ''} err ${f.errorRate === undefined ? '-' : f.errorRate.toFixed(2)}${f.rules === '' ? '' : ` {${f.rules}}`} [${f.all}]`;
  return `in flight ${p.inFlight}; ${e}; ${fu}`;
}

/** The trace's lines around each event time (seconds since the load started). */
export function traceLines(points: readonly TracePoint[], samples: readonly Sample[], eventsS: readonly number[]): string[] {
  const out: string[] = [];
  const first = eventsS[0];
  if (first !== undefined) out.push(`    ${inFlightBefore(points, first)}`);
  for (const at of eventsS) {
    out.push(`    around t=${at.toFixed(1)} s: failed sent in [−${BEFORE_S} s, event) ${failedBetween(samples, at - BEFORE_S, at)}, [event, +1 s) ${failedBetween(samples, at, at + 1)}, [+1 s, +${AFTER_S} s) ${failedBetween(samples, at + 1, at + AFTER_S)}`);
    let last = '';
    for (const p of points) {
      if (p.t < at - BEFORE_S || p.t >= at + AFTER_S) continue;
      const failed = failedBetween(samples, p.t - STEP_S, p.t);
      const now = describe(p);
      // Only what moved: a quiet stretch is one line.
      if (failed === 0 && now === last) continue;
      last = now;
      out.push(`      ${(p.t - at >= 0 ? '+' : '')}${(p.t - at).toFixed(2)} s: failed sent ${failed}; ${now}`);
    }
  }
  return out;
}

/** The event's backend's mean requests in flight over the 5 s before the first event (what a death there would lose). */
function inFlightBefore(points: readonly TracePoint[], at: number): string {
  const before = points.filter((p) => p.t >= at - 5 && p.t < at);
  if (before.length === 0) return 'in flight before the first event: no reading';
  const mean = before.reduce((a, p) => a + p.inFlight, 0) / before.length;
  const envoy = before.filter((p) => p.envoy !== undefined);
  const active = envoy.reduce((a, p) => a + (p.envoy?.rqActive ?? 0), 0) / Math.max(1, envoy.length);
  return `in flight on the event's backend over the 5 s before the first event: mean ${mean.toFixed(2)} (backend), ${active.toFixed(2)} (Envoy's rq_active), ${before.length} readings`;
}
