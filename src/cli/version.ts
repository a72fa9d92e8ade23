import { createRequire } from 'node:module';

/** The package's version: ../../package.json from src/cli/ and from dist/cli/ alike. */
export function packageVersion(): string {
  try {
    return (createRequire(import.meta.url)('../../package.json') as { version?: string }).version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}
