import { UsageError } from './usage-error.js';

/**
 * The flags of `fulcrum serve`: one table drives parsing, validation and --help, so the help can
 * never list a flag the parser does not know or a default it does not apply.
 */

export type LogFormat = 'json' | 'pretty';
const LOG_FORMATS: readonly string[] = ['json', 'pretty'];
const LOG_LEVELS: readonly string[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

export interface ServeFlags {
  readonly config: string;
  readonly xdsPort?: number;
  readonly xdsAddress?: string;
  readonly adminPort?: number;
  readonly adminAddress?: string;
  readonly dataDir: string;
  /** Absent: pretty when stdout is a terminal, JSON otherwise. */
  readonly logFormat?: LogFormat;
  /** Absent: the config file's `server.logLevel`. */
  readonly logLevel?: string;
  /** Several replicas on etcd: this one's name (absent: ha.replicaId, $FULCRUM_REPLICA_ID, the host name). */
  readonly replicaId?: string;
  /** Hand freed C-allocator memory back to the kernel when the loop is quiet (src/runtime/native-memory.ts). */
  readonly trimNativeMemory: boolean;
}

interface FlagSpec {
  readonly flag: string;
  readonly short?: string;
  readonly value: string;
  readonly env?: string;
  readonly default: string;
  readonly help: string;
}

export const SERVE_FLAGS: readonly FlagSpec[] = [
  { flag: 'config', short: 'c', value: 'FILE', env: 'FULCRUM_CONFIG', default: 'fulcrum.yaml', help: 'config file (watched: valid edits are applied live)' },
  { flag: 'xds-port', value: 'PORT', default: 'server.xds.port of the config (18000)', help: 'xDS gRPC port; 0 picks a free one (and a free admin port)' },
  { flag: 'xds-address', value: 'ADDR', default: 'server.xds.address of the config', help: 'xDS gRPC bind address' },
  { flag: 'admin-port', value: 'PORT', default: 'server.admin.port of the config (8080)', help: 'admin HTTP API port; 0 picks a free one' },
  { flag: 'admin-address', value: 'ADDR', default: 'server.admin.address of the config', help: 'admin HTTP API bind address' },
  { flag: 'data-dir', value: 'DIR', env: 'FULCRUM_DATA_DIR', default: './data', help: 'durable state (SQLite); locked against a second instance' },
  { flag: 'log-format', value: 'json|pretty', env: 'FULCRUM_LOG_FORMAT', default: 'pretty on a terminal, json otherwise', help: 'log line format' },
  { flag: 'replica-id', value: 'NAME', env: 'FULCRUM_REPLICA_ID', default: 'ha.replicaId of the config, else the host name', help: 'this replica\'s name when several share an etcd store' },
  { flag: 'trim-native-memory', value: 'on|off', env: 'FULCRUM_TRIM_NATIVE_MEMORY', default: 'on', help: 'hand memory freed by the C allocator back to the kernel when idle (glibc only)' },
  { flag: 'log-level', value: 'LEVEL', env: 'FULCRUM_LOG_LEVEL', default: 'server.logLevel of the config (info)', help: LOG_LEVELS.join('|') },
];

/** Environment variables read by `serve` that have no flag. */
export const SERVE_ENV: readonly (readonly [string, string])[] = [
  ['FULCRUM_ADMIN_TOKEN', 'comma-separated admin API bearer tokens (read and write), each <name>:<token> or <token>'],
  ['FULCRUM_READ_TOKEN', 'comma-separated read-only admin API bearer tokens'],
  ['FULCRUM_REPORT_TOKEN', 'comma-separated tokens allowed only to POST /v1/reports'],
];

/** A TCP port from the command line: digits only, 0–65535. */
export function parsePort(flag: string, text: string): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) > 65_535) throw new UsageError(`--${flag}: expected a port number 0-65535, got ${JSON.stringify(text)}`);
  return Number(text);
}

function parseAddress(flag: string, text: string): string {
  if (text.trim() === '' || /\s/.test(text)) throw new UsageError(`--${flag}: expected an IP address or host name, got ${JSON.stringify(text)}`);
  return text;
}

function oneOf(flag: string, text: string, allowed: readonly string[]): string {
  if (!allowed.includes(text)) throw new UsageError(`--${flag}: expected one of ${allowed.join(', ')}, got ${JSON.stringify(text)}`);
  return text;
}

type Env = Readonly<Record<string, string | undefined>>;

/** Validates every value (flags first, then their environment variables) before anything starts. */
export function serveFlags(values: Readonly<Record<string, string | boolean | undefined>>, env: Env): ServeFlags {
  const text = (flag: string): string | undefined => {
    const v = values[flag];
    if (typeof v === 'string') return v;
    const envName = SERVE_FLAGS.find((f) => f.flag === flag)?.env;
    return envName !== undefined && env[envName] !== undefined && env[envName] !== '' ? env[envName] : undefined;
  };
  const port = (flag: string) => {
    const t = text(flag);
    return t === undefined ? undefined : parsePort(flag, t);
  };
  const address = (flag: string) => {
    const t = text(flag);
    return t === undefined ? undefined : parseAddress(flag, t);
  };
  const format = text('log-format');
  const replicaId = text('replica-id');
  // The same rule as the config file's ha.replicaId.
  if (replicaId !== undefined && !/^[A-Za-z0-9._:-]{1,253}$/.test(replicaId))
    throw new UsageError(`--replica-id: expected letters, digits, '.', '_', ':' or '-' (at most 253), got ${JSON.stringify(replicaId)}`);
  const level = text('log-level');
  const xdsPort = port('xds-port');
  const adminPort = port('admin-port');
  const xdsAddress = address('xds-address');
  const adminAddress = address('admin-address');
  const trim = text('trim-native-memory');
  return {
    config: text('config') ?? 'fulcrum.yaml',
    dataDir: text('data-dir') ?? 'data',
    ...(xdsPort !== undefined ? { xdsPort } : {}),
    ...(adminPort !== undefined ? { adminPort } : {}),
    ...(xdsAddress !== undefined ? { xdsAddress } : {}),
    ...(adminAddress !== undefined ? { adminAddress } : {}),
    ...(format !== undefined ? { logFormat: oneOf('log-format', format, LOG_FORMATS) as LogFormat } : {}),
    ...(level !== undefined ? { logLevel: oneOf('log-level', level, LOG_LEVELS) } : {}),
    ...(replicaId !== undefined ? { replicaId } : {}),
    trimNativeMemory: trim === undefined || oneOf('trim-native-memory', trim, ['on', 'off']) === 'on',
  };
}

/** parseArgs options for the serve flags. */
export function serveParseOptions(): Record<string, { type: 'string'; short?: string }> {
  return Object.fromEntries(SERVE_FLAGS.map((f) => [f.flag, { type: 'string' as const, ...(f.short ? { short: f.short } : {}) }]));
}
