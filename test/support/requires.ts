import { describe, test } from 'vitest';
import { scaled } from './timing.js';

/**
 * A suite that needs an external program (Envoy, kube-apiserver, Chromium, ...). Where the
 * program is found the suite runs. Where it is missing: under CI (or when `requireEnv` is set)
 * a failing test says so — CI must never skip silently; locally the suite is skipped with the
 * reason printed. `timeout` (per test) is scaled by FULCRUM_TEST_TIME_FACTOR. `required`: a
 * failing test wherever the program is missing (a suite that must never be skipped).
 */
export function describeRequiring(
  what: string,
  found: { readonly ok: boolean; readonly detail: string },
  name: string,
  fn: () => void,
  opts: { readonly timeout?: number; readonly requireEnv?: string; readonly required?: boolean } = {},
): void {
  if (found.ok) {
    describe(name, opts.timeout !== undefined ? { timeout: scaled(opts.timeout) } : {}, fn);
    return;
  }
  const required = opts.required === true || inCi() || (opts.requireEnv !== undefined && process.env[opts.requireEnv] === '1');
  if (required) {
    describe(name, () => {
      test(`${what} is available`, () => {
        throw new Error(`${what} is MISSING but required (CI${opts.requireEnv ? ` or ${opts.requireEnv}=1` : ''}), so "${name}" cannot run: ${found.detail}`);
      });
    });
    return;
  }
  console.warn(`[skip] "${name}": ${what} not found: ${found.detail} (set CI=1 to fail instead)`);
  describe.skip(name, fn);
}

/** CI=true (or any value but '', '0', 'false'). */
export function inCi(): boolean {
  const ci = process.env.CI;
  return ci !== undefined && ci !== '' && ci !== '0' && ci.toLowerCase() !== 'false';
}
