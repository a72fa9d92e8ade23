import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, type CliDeps } from '../../src/cli/run.js';
import { apiUrl } from '../../src/cli/admin-client.js';

/**
 * `--server` pointing at something that is not fulcrum's admin API (Envoy's admin port, a login
 * page in front of it, another service): a user error, told as one, never an internal error
 * message nor a success that printed "undefined".
 */
function answering(contentType: string, body: string): Promise<Server> {
  const server = createServer((_req, res) => {
    res.setHeader('content-type', contentType);
    res.end(body);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

const COMMANDS = [['status'], ['proxies'], ['weights', 'web'], ['config-dump'], ['audit']];

describe.each([
  ['an HTML page', 'text/html', '<html>sign in</html>'],
  ['JSON of another shape', 'application/json', '{}'],
])('operator commands against %s', (_what, contentType, body) => {
  let server: Server;
  beforeAll(async () => {
    server = await answering(contentType, body);
  });
  afterAll(() => server.close());

  it.each(COMMANDS)('%s: exit 1, saying the server is not a fulcrum admin API', async (...argv) => {
    const out: string[] = [];
    const err: string[] = [];
    const deps: CliDeps = { env: {}, write: (t) => void out.push(t), error: (t) => void err.push(t), serve: async () => undefined };
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    expect(await runCli([...argv, '--server', url], deps)).toBe(1);
    expect(err.join('')).toContain(`${url} did not answer as a fulcrum admin API`);
    expect(err.join('')).not.toMatch(/Cannot read properties|is not iterable|undefined/);
    expect(out.join('')).toBe('');
  });
});

describe('apiUrl', () => {
  it('keeps the server URL\'s path prefix (an admin API behind a reverse proxy) and its query', () => {
    expect(apiUrl(new URL('http://127.0.0.1:8080'), '/v1/clusters?x=1').href).toBe('http://127.0.0.1:8080/v1/clusters?x=1');
    expect(apiUrl(new URL('https://ops.example/fulcrum'), '/v1/proxies').href).toBe('https://ops.example/fulcrum/v1/proxies');
    expect(apiUrl(new URL('https://ops.example/fulcrum/'), '/v1/audit?limit=5').href).toBe('https://ops.example/fulcrum/v1/audit?limit=5');
  });
});
