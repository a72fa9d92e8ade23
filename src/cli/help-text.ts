import { SERVE_ENV, SERVE_FLAGS } from './serve-flags.js';

/** --help for the whole command and for `serve`: generated from the flag table. */

const pad = (s: string, n: number) => s.padEnd(n);

export function serveHelp(): string {
  const flags = SERVE_FLAGS.map((f) => {
    const name = `${f.short ? `-${f.short}, ` : '    '}--${f.flag} ${f.value}`;
    const env = f.env ? ` [env ${f.env}]` : '';
    return `  ${pad(name, 34)} ${f.help}${env}\n  ${pad('', 34)} default: ${f.default}`;
  });
  const env = SERVE_ENV.map(([name, help]) => `  ${pad(name, 34)} ${help}`);
  return [
    'usage: fulcrum [serve] [flags]',
    '',
    'Runs the control plane: serves the config file\'s clusters and listeners to Envoy over xDS,',
    'with the admin HTTP API (dashboard, /v1/*, /metrics) beside it. Flags override the config file;',
    'a flag overrides its environment variable.',
    '',
    'flags:',
    ...flags,
    '  -h, --help                          this help',
    '  -v, --version                       print the version',
    '',
    'environment:',
    ...env,
    '',
  ].join('\n');
}

export function mainHelp(): string {
  return [
    'usage: fulcrum <command> [flags]',
    '',
    'commands:',
    '  serve                 run the control plane (the default without a command; fulcrum serve --help)',
    '  status                readiness, version and proxies by sync state',
    '  proxies               connected proxies with SYNCED/STALE/NACKED per xDS type',
    '  weights <cluster>     each endpoint\'s published weight, its share and why',
    '  config-dump --node ID the resources a node is sent, decoded (--type CDS|EDS|LDS|RDS)',
    '  audit [--limit N]     who changed what, newest first (default 20 entries)',
    '  check --config FILE   validate a config file without starting (exit 1 if invalid)',
    '  version               print the version',
    '',
    'flags of status, proxies, weights, config-dump, audit:',
    '  -s, --server URL      the admin API [env FULCRUM_ADMIN_URL] default: http://127.0.0.1:8080',
    '  -o, --output FORMAT   table (default) or json',
    '      the bearer token is read from FULCRUM_ADMIN_TOKEN (or FULCRUM_READ_TOKEN)',
    '',
    'exit status: 0 ok, 1 failed (or not ready, or invalid config), 2 usage error',
    '',
    serveHelp(),
  ].join('\n');
}
