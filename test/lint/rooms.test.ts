import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

/**
 * The import rules of eslint.config.js, exercised through ESLint itself: a backward arrow is an
 * error, a forward one is not, and every folder of src/ is a room with rules.
 */
const root = fileURLToPath(new URL('../../', import.meta.url));
const eslint = new ESLint({ cwd: root });
const RULE = '@typescript-eslint/no-restricted-imports';

/** The import-rule messages for `code` placed at `file` (relative to the repo). */
async function violations(file: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(`${code}\nexport {};\n`, { filePath: `${root}${file}` });
  return (result?.messages ?? []).filter((m) => m.ruleId === RULE).map((m) => m.message);
}

describe('room import rules', () => {
  it.each([
    ['src/catalog/x.ts', "import { WeightEngine } from '../balancing/engine/weight-engine.js';"],
    ['src/catalog/store/x.ts', "import type { XdsCache } from '../../xds/cache.js';"],
    ['src/balancing/engine/x.ts', "import { parseConfig } from '../../sources/config-file.js';"],
    ['src/balancing/x.ts', "import { EMPTY } from '../catalog/types.js';"],
    ['src/sources/x.ts', "import { WeightEngine } from '../balancing/engine/weight-engine.js';"],
    ['src/sources/kubernetes/x.ts', "import { XdsServer } from '../../xds/server.js';"],
    ['src/xds/x.ts', "import { AdaptiveWeights } from '../weights/adaptive.js';"],
    ['src/xds/x.ts', "import { Signals } from '../signals/signals.js';"],
    ['src/signals/x.ts', "import { XdsCache } from '../xds/cache.js';"],
    ['src/weights/x.ts', "import { XdsServer } from '../xds/server.js';"],
    ['src/weights/x.ts', "import { publish } from '../xds/publisher.js';"],
    ['src/weights/x.ts', "import { SignalStore } from '../signals/signal-store.js';"],
    ['src/admin/routes/x.ts', "import { startFulcrum } from '../../main.js';"],
    ['src/telemetry/x.ts', "import type { Cluster } from '../catalog/types.js';"],
    ['src/xds/cache.ts', "import { translate } from './translate-clusters.js';"],
    ['src/xds/sotw-stream.ts', "import { translate } from './translator.js';"],
    ['src/xds/x.ts', "import { fleet } from '../../bench/selectors/index.js';"],
    ['src/catalog/types.ts', "import type { SafetySettings } from '../balancing/engine/types.js';"],
    ['src/xds/cache.ts', "import { DEFAULT_GROUP } from './translator.js';"],
    ['src/balancing/engine/x.ts', "import { choosePolicy } from '../../catalog/auto-policy.js';"],
    ['src/runtime/x.ts', "import type { Cluster } from '../catalog/types.js';"],
    ['src/cli/x.ts', "import { XdsServer } from '../xds/server.js';"],
    ['src/cli/x.ts', "import type { Proxy } from '../admin/schemas.js';"],
  ])('%s: %s is refused', async (file, code) => {
    expect(await violations(file, code)).toHaveLength(1);
  });

  it.each([
    ['src/balancing/engine/x.ts', "import type { Cluster } from '../../catalog/types.js';"],
    ['src/balancing/engine/x.ts', "import { PidController } from '../pid.js';"],
    ['src/sources/x.ts', "import type { Cluster } from '../catalog/types.js';"],
    ['src/signals/x.ts', "import { TYPE } from '../xds/envoy-api.js';"],
    ['src/signals/x.ts', "import { WeightEngine } from '../balancing/engine/weight-engine.js';"],
    ['src/weights/x.ts', "import type { Publisher } from '../xds/publisher.js';"],
    ['src/weights/x.ts', "import type { SignalStore } from '../signals/signal-store.js';"],
    ['src/weights/x.ts', "import { WeightEngine } from '../balancing/engine/weight-engine.js';"],
    ['src/xds/translate-clusters.ts', "import { MAX_LOCALITY_WEIGHT_SUM } from '../balancing/integer-weights.js';"],
    ['src/xds/publisher.ts', "import { translate } from './translator.js';"],
    ['src/admin/routes/x.ts', "import { AdaptiveWeights } from '../../weights/adaptive.js';"],
    ['src/admin/x.ts', "import { parseConfig } from '../sources/config-file.js';"],
    ['src/main.ts', "import { AdaptiveWeights } from './weights/adaptive.js';"],
    ['src/cli/x.ts', "import { parseConfig } from '../sources/config-file.js';"],
    ['src/balancing/engine/tick/x.ts', "import { SAFETY_DEFAULTS } from '../../../catalog/policy.js';"],
    ['src/xds/publisher.ts', "import type { Component } from '../runtime/lifecycle.js';"],
    // The listed exception (eslint.config.js EXCEPTIONS).
    ['src/sources/config-file.ts', "import type { XdsServerOptions } from '../xds/server.js';"],
  ])('%s: %s is allowed', async (file, code) => {
    expect(await violations(file, code)).toEqual([]);
  });

  it('an exception allows its one module only', async () => {
    expect(await violations('src/sources/config-file.ts', "import { XdsCache } from '../xds/cache.js';")).toHaveLength(1);
  });

  it('every folder of src/ is a room with import rules', async () => {
    const folders = readdirSync(`${root}src`, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
    expect(folders.length).toBeGreaterThan(0);
    for (const folder of folders) {
      const config = (await eslint.calculateConfigForFile(`${root}src/${folder}/any.ts`)) as { rules?: Record<string, unknown> };
      expect(config.rules?.[RULE], `src/${folder}/ has no room rule in eslint.config.js`).toBeDefined();
    }
  });
});
