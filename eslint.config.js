import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * The rooms of src/ and the arrows between them (docs/ARCHITECTURE.md draws the picture).
 * Data flows one way: sources → catalog → engine (weights) → translator → cache → xDS server;
 * nothing downstream reaches back upstream. Each room lists the rooms it may import; every other
 * room is forbidden to it. `room/module` entries allow that one module of the room, `types`
 * entries allow `import type` only. src/main.ts (the composition root) may import everything;
 * nothing may import main.ts, bench/ or test/.
 */
export const ROOMS = {
  runtime: { may: [] }, // the Component lifecycle and the debouncer every stage uses
  catalog: { may: ['telemetry', 'runtime'] }, // domain types, catalog, store: the bottom
  // Pure algorithms and the weight engine. catalog/policy is the pure domain module of weighting
  // policies (their defaults and validation), the one catalog module the engine loads.
  balancing: { may: ['catalog/policy'], types: ['catalog'] },
  telemetry: { may: [] },
  sources: { may: ['catalog', 'telemetry', 'runtime'] },
  signals: { may: ['catalog', 'balancing', 'telemetry', 'runtime', 'xds/envoy-api', 'xds/proto-values'] },
  weights: { may: ['catalog', 'balancing', 'telemetry', 'runtime'], types: ['signals', 'xds/publisher'] },
  xds: { may: ['catalog', 'balancing', 'telemetry', 'runtime'] },
  // Replication on etcd (issue 9): membership, one owner per cluster, weights and signals shared
  // through etcd. It drives the adaptive weights and the signal store through small interfaces.
  ha: { may: ['catalog', 'runtime', 'telemetry', 'signals/signal-store'], types: ['balancing'] },
  // Admin validates request bodies with the config file's own rules (sources/config-*), and writes
  // its enums as the config file's (sources/string-enum).
  admin: { may: ['catalog', 'balancing', 'signals', 'weights', 'xds', 'sources/config-file', 'sources/config-schema', 'sources/string-enum', 'telemetry', 'runtime'] },
  // The command line: argument parsing, the operator commands (HTTP clients of the admin API, not
  // of its code) and `check`, which validates a config file with the file's own rules.
  cli: { may: ['sources/config-file'] },
};

/** Inside xds/: the cache and the stream machines carry encoded resources, never translate them. */
const XDS_DELIVERY = ['src/xds/cache.ts', 'src/xds/server.ts', 'src/xds/sotw-stream.ts', 'src/xds/delta-stream.ts', 'src/xds/stream-common.ts'];
const TRANSLATOR = { regex: '^\\./(translator|translate-[a-z-]+)\\.js$', message: 'the cache and the stream machines must not depend on the translator (it feeds them through the publisher).' };

/**
 * Known backward arrows being removed in parallel work (issue 12). Each entry lets one file
 * import one module; delete the entry when its fix is merged.
 */
const EXCEPTIONS = [
  // Deriving the xDS server settings from the file's `server.xds` block (a type only).
  { file: 'src/sources/config-file.ts', allow: ['../xds/server.js'] },
];

const escape = (s) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
/** A relative specifier that leaves the current room for `target` (a room or room/module). */
const into = (target) => `^(\\.\\./)+${escape(target)}${target.includes('/') ? '\\.js$' : '(/|\\.js$)'}`;

/** The no-restricted-imports patterns of one room. */
function roomPatterns(room) {
  const { may, types = [] } = ROOMS[room];
  const why = `src/${room}/ may import only ${[...may, ...types.map((t) => `types of ${t}`)].join(', ') || 'its own files'} (see docs/ARCHITECTURE.md).`;
  const patterns = [
    { regex: '^(\\.\\./)+(main\\.js$|bench/|test/)', message: 'nothing in src/ imports the composition root, bench/ or test/.' },
  ];
  for (const other of Object.keys(ROOMS)) {
    if (other === room || may.includes(other)) continue;
    const allowedModules = [...may, ...types].filter((m) => m.startsWith(`${other}/`)).map((m) => m.slice(other.length + 1));
    const except = allowedModules.length === 0 ? '' : `(?!(${allowedModules.map(escape).join('|')})\\.js$)`;
    if (!types.includes(other)) patterns.push({ regex: into(other).replace('(/|\\.js$)', `(/${except}|\\.js$)`), message: why });
    const typeOnly = types.filter((t) => t === other || t.startsWith(`${other}/`));
    for (const t of typeOnly) {
      const regex = t === other ? into(other).replace('(/|\\.js$)', `(/${except}|\\.js$)`) : into(t);
      patterns.push({ regex, allowTypeImports: true, message: `${why} Use \`import type\`.` });
    }
  }
  return patterns;
}

/** Patterns made blind to the exact specifiers in `allow`. */
const exempt = (patterns, allow) =>
  patterns.map((p) => ({ ...p, regex: `^(?!(${allow.map(escape).join('|')})$)${p.regex.slice(1)}` }));

const rule = (patterns) => ({ '@typescript-eslint/no-restricted-imports': ['error', { patterns }] });

function roomConfigs() {
  const configs = [];
  for (const room of Object.keys(ROOMS)) {
    configs.push({ files: [`src/${room}/**/*.ts`], rules: rule(roomPatterns(room)) });
  }
  for (const file of XDS_DELIVERY) {
    const allow = EXCEPTIONS.find((e) => e.file === file)?.allow ?? [];
    const patterns = [...roomPatterns('xds'), TRANSLATOR];
    configs.push({ files: [file], rules: rule(allow.length > 0 ? exempt(patterns, allow) : patterns) });
  }
  for (const { file, allow } of EXCEPTIONS) {
    if (XDS_DELIVERY.includes(file)) continue;
    const room = file.split('/')[1] ?? '';
    configs.push({ files: [file], rules: rule(exempt(roomPatterns(room), allow)) });
  }
  return configs;
}

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', '.tools/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  ...roomConfigs(),
);
