import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { envoyDescriptor, PREBUILT_DESCRIPTOR } from '../src/xds/envoy-api.js';

/**
 * Part of `npm run build`: Envoy's API, parsed from the pinned .proto tree, saved as a JSON
 * descriptor where the compiled envoy-api.js looks for it (dist/xds/: the bundle keeps each module's
 * own URL, scripts/bundle.mjs), which loads it at start instead of parsing.
 * Generated, never committed (dist/ only).
 */
const out = process.argv[2] ?? `dist/xds/${PREBUILT_DESCRIPTOR}`;
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, envoyDescriptor());
process.stdout.write(`wrote ${out}\n`);
