/**
 * The etcd store's plans for overrides on discovered clusters and endpoints (see etcd-plans.ts
 * for what a plan is): one key per override under `overrides/`, compared on its mod_revision.
 */
import { NotFoundError } from './errors.js';
import { keyOf, overrideRecordOf, type StoredOverride } from './etcd-layout.js';
import type { MirrorView, Outcome } from './etcd-plans.js';
import { canonicalJson, checkIfMatch } from './ownership.js';
import { checkOverride, overrideName, type OverrideOptions, type OverrideTarget, type OverrideValue } from './override-records.js';

export function planPutOverride(view: MirrorView, target: OverrideTarget, value: OverrideValue, opts: OverrideOptions, at: string): Outcome {
  checkOverride(target, value);
  const name = overrideName(target);
  const cur = view.get<StoredOverride>('overrides', name);
  checkIfMatch('override', name, opts.ifMatch, cur?.mod);
  if (cur && canonicalJson(cur.value.value) === canonicalJson(value)) return { noop: cur.mod };
  const stored: StoredOverride = { target, value, at };
  return {
    plan: {
      compares: [{ key: keyOf('overrides', name), mod: cur?.mod ?? 0 }],
      puts: [{ key: keyOf('overrides', name), value: stored }],
      deletes: [],
      audits: [{ action: cur ? 'update' : 'create', kind: 'override', name, before: cur ? overrideRecordOf(name, cur.value, cur.mod) : null, after: stored }],
    },
  };
}

export function planDeleteOverride(view: MirrorView, name: string, opts: OverrideOptions): Outcome {
  const cur = view.get<StoredOverride>('overrides', name);
  if (!cur) throw new NotFoundError('override', name);
  checkIfMatch('override', name, opts.ifMatch, cur.mod);
  return {
    plan: {
      compares: [{ key: keyOf('overrides', name), mod: cur.mod }],
      puts: [],
      deletes: [keyOf('overrides', name)],
      audits: [{ action: 'delete', kind: 'override', name, before: overrideRecordOf(name, cur.value, cur.mod), after: null }],
    },
  };
}
