import { pino, type Logger } from 'pino';

export type { Logger };

/** Structured JSON logs on stdout; one line per event, machine-parseable. */
export function createLogger(level: string = process.env.FULCRUM_LOG_LEVEL ?? 'info'): Logger {
  return pino({ name: 'fulcrum', level, base: { pid: process.pid } });
}
