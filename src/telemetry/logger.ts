import { createRequire } from 'node:module';
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

export type LogFormat = 'json' | 'pretty';

/**
 * Structured logs on stdout: JSON lines (one per event, machine-parseable) by default, or
 * pino-pretty's readable lines (local time, level names, colour) for a person at a terminal.
 * pino-pretty is loaded only when asked for and runs in-process (sync), so no worker thread
 * or transport lingers at exit and a log line printed just before exit is not lost.
 */
export function createLogger(level: string = process.env.FULCRUM_LOG_LEVEL ?? 'info', format: LogFormat = 'json'): Logger {
  const options = { name: 'fulcrum', level, base: { pid: process.pid } };
  return format === 'pretty' ? pino(options, prettyStream()) : pino(options);
}

/** JSON unless stdout is a terminal: pipes, files and log collectors keep getting JSON. */
export function defaultLogFormat(stdout: { isTTY?: boolean } = process.stdout): LogFormat {
  return stdout.isTTY === true ? 'pretty' : 'json';
}

function prettyStream(): DestinationStream {
  const pretty = createRequire(import.meta.url)('pino-pretty') as (options: Record<string, unknown>) => DestinationStream;
  return pretty({ sync: true, colorize: process.stdout.isTTY === true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,name', singleLine: true });
}
