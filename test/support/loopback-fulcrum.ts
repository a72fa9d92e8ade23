/**
 * fulcrum in-process for tests that talk to it directly (admin API, xDS client, browser): both
 * ports on 127.0.0.1 at kernel-chosen ports, so parallel test files never collide, and silent
 * unless the test passes a logger.
 */
import { pino } from 'pino';
import { startFulcrum, type Fulcrum, type FulcrumOptions } from '../../src/main.js';

export function startLoopbackFulcrum(configPath: string, more: Omit<FulcrumOptions, 'configPath'> = {}): Promise<Fulcrum> {
  return startFulcrum({
    xdsPort: 0,
    xdsAddress: '127.0.0.1',
    adminPort: 0,
    adminAddress: '127.0.0.1',
    logger: pino({ level: 'silent' }),
    ...more,
    configPath,
  });
}
