import { writeFileSync } from 'node:fs';
import { envoyDescriptor, PREBUILT_DESCRIPTOR } from '../src/xds/envoy-api.js';

/**
 * Part of `npm run build`: Envoy's API, parsed from the pinned .proto tree, saved as a JSON
 * descriptor beside the compiled envoy-api.js, which loads it at start instead of parsing.
 * Generated, never committed (dist/ only).
 */
const out = process.argv[2] ?? `dist/xds/${PREBUILT_DESCRIPTOR}`;
writeFileSync(out, envoyDescriptor());
process.stdout.write(`wrote ${out}\n`);
