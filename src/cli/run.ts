import { parseArgs } from 'node:util';
import { AdminClient, DEFAULT_SERVER } from './admin-client.js';
import { auditCommand } from './audit-command.js';
import { checkCommand } from './check-command.js';
import { mainHelp, serveHelp } from './help-text.js';
import { configDumpCommand, proxiesCommand, statusCommand, weightsCommand, type CommandContext, type OutputFormat } from './operator-commands.js';
import { serveFlags, serveParseOptions, type ServeFlags } from './serve-flags.js';
import { CommandError, UsageError } from './usage-error.js';
import { packageVersion } from './version.js';

/**
 * The `fulcrum` command line: picks the subcommand, validates every value before anything starts,
 * and returns the exit status. `serve` is injected so this room never loads the server's rooms.
 */

export interface CliDeps {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly write: (text: string) => void;
  readonly error: (text: string) => void;
  /** Starts the server; resolves once it is serving (it keeps running), rejects if it cannot start. */
  readonly serve: (flags: ServeFlags) => Promise<void>;
}

/** 'keep-running' when `serve` started: the process lives on until a signal. */
export type CliOutcome = number | 'keep-running';

const COMMANDS = ['serve', 'status', 'proxies', 'weights', 'config-dump', 'audit', 'check', 'version', 'help'] as const;

export async function runCli(argv: readonly string[], deps: CliDeps): Promise<CliOutcome> {
  const first = argv[0];
  const command = first !== undefined && !first.startsWith('-') ? first : 'serve';
  const rest = command === first ? argv.slice(1) : argv;
  try {
    return await dispatch(command, rest, deps, command === first);
  } catch (err) {
    if (err instanceof UsageError || isParseArgsError(err)) {
      deps.error(`fulcrum ${command}: ${(err as Error).message}\nRun 'fulcrum --help' for usage.\n`);
      return 2;
    }
    if (err instanceof CommandError) {
      deps.error(`fulcrum ${command}: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}

function isParseArgsError(err: unknown): boolean {
  return String((err as { code?: unknown }).code ?? '').startsWith('ERR_PARSE_ARGS');
}

async function dispatch(command: string, args: readonly string[], deps: CliDeps, named: boolean): Promise<CliOutcome> {
  switch (command) {
    case 'serve':
      return serve(args, deps, named);
    case 'version':
      deps.write(`fulcrum ${packageVersion()} (node ${process.version})\n`);
      return 0;
    case 'help':
      deps.write(mainHelp());
      return 0;
    case 'check':
      return check(args, deps);
    case 'status':
    case 'proxies':
    case 'weights':
    case 'config-dump':
    case 'audit':
      return operator(command, args, deps);
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)} (commands: ${COMMANDS.join(', ')})`);
  }
}

/** `named`: `fulcrum serve …` rather than the bare `fulcrum …` (whose --help lists every command). */
async function serve(args: readonly string[], deps: CliDeps, named: boolean): Promise<CliOutcome> {
  const { values } = parseArgs({
    args: [...args],
    options: { ...serveParseOptions(), help: { type: 'boolean', short: 'h' }, version: { type: 'boolean', short: 'v' } },
    strict: true,
  });
  if (values.help) {
    deps.write(named ? serveHelp() : mainHelp());
    return 0;
  }
  if (values.version) {
    deps.write(`fulcrum ${packageVersion()}\n`);
    return 0;
  }
  await deps.serve(serveFlags(values, deps.env));
  return 'keep-running';
}

async function check(args: readonly string[], deps: CliDeps): Promise<number> {
  const { values, positionals } = parseArgs({
    args: [...args],
    options: { config: { type: 'string', short: 'c' }, output: { type: 'string', short: 'o', default: 'table' } },
    allowPositionals: true,
  });
  const files = [...(values.config !== undefined ? [values.config] : []), ...positionals];
  const file = files[0];
  if (file === undefined) throw new UsageError('--config FILE is required');
  // A shell glob (`fulcrum check *.yaml`) would otherwise pass on the first file alone.
  if (files.length > 1) throw new UsageError(`expected one config file, got ${files.length}: ${files.join(' ')}`);
  return checkCommand(file, outputFormat(values.output), deps);
}

async function operator(command: 'status' | 'proxies' | 'weights' | 'config-dump' | 'audit', args: readonly string[], deps: CliDeps): Promise<number> {
  const { values, positionals } = parseArgs({
    args: [...args],
    options: {
      server: { type: 'string', short: 's' },
      output: { type: 'string', short: 'o', default: 'table' },
      node: { type: 'string' },
      type: { type: 'string' },
      limit: { type: 'string' },
    },
    allowPositionals: command === 'weights',
  });
  const client = new AdminClient({
    server: values.server ?? deps.env.FULCRUM_ADMIN_URL ?? DEFAULT_SERVER,
    ...tokenOf(deps.env),
  });
  const ctx: CommandContext = { client, output: outputFormat(values.output), write: deps.write };
  if (command === 'status') return statusCommand(ctx);
  if (command === 'proxies') return proxiesCommand(ctx);
  if (command === 'config-dump') return configDumpCommand(ctx, values.node, values.type);
  if (command === 'audit') return auditCommand(ctx, values.limit);
  const [cluster, ...extra] = positionals;
  if (cluster === undefined || extra.length > 0) throw new UsageError('expected exactly one cluster name: fulcrum weights <cluster>');
  return weightsCommand(ctx, cluster);
}

/**
 * The first token of FULCRUM_ADMIN_TOKEN, else of FULCRUM_READ_TOKEN (both are comma-separated
 * lists of `<name>:<token>` or bare `<token>` entries, as the server reads them): its secret part.
 */
function tokenOf(env: CliDeps['env']): { token?: string } {
  const first = (list: string | undefined) => list?.split(',').map((t) => t.trim()).find((t) => t !== '');
  const entry = first(env.FULCRUM_ADMIN_TOKEN) ?? first(env.FULCRUM_READ_TOKEN);
  return entry !== undefined ? { token: entry.slice(entry.indexOf(':') + 1) } : {};
}

function outputFormat(text: string | undefined): OutputFormat {
  if (text === 'table' || text === 'json') return text;
  throw new UsageError(`--output: expected table or json, got ${JSON.stringify(text)}`);
}
