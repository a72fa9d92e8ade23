/**
 * Debian's Chromium (scripts/install-chromium.sh; CHROMIUM_BIN overrides), driven by
 * playwright-core without a browser download: the dashboard's browser tests and
 * bench/dashboard-load.ts.
 */
import { existsSync } from 'node:fs';
import { chromium, type BrowserContext } from 'playwright-core';
import { describeRequiring } from './requires.js';

export const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';

/** A suite that needs Chromium: skipped with the reason locally, failed under CI when it is missing. */
export function describeChromium(name: string, fn: () => void, timeout = 60_000): void {
  const detail = `no Chromium at ${CHROMIUM} (bash scripts/install-chromium.sh, or set CHROMIUM_BIN)`;
  describeRequiring('Chromium', { ok: existsSync(CHROMIUM), detail }, name, fn, { timeout });
}

/** A headless Chromium with its profile in `profileDir`, a 1280 × 900 window unless told otherwise. */
export function launchChromium(profileDir: string, viewport = { width: 1280, height: 900 }): Promise<BrowserContext> {
  return chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport,
  });
}
