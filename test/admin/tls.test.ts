/**
 * The admin API over HTTPS (`server.admin.tls`): a self-signed certificate made with openssl, a
 * real fulcrum serving /healthz over TLS and refusing plain HTTP, and the start failing with the
 * file's name when the certificate or key cannot be used.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { get as httpsGet } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { startFulcrum, type Fulcrum } from '../../src/main.js';
import { ConfigError, parseConfig } from '../../src/sources/config-file.js';

function opensslVersion(): string | undefined {
  try {
    return execFileSync('openssl', ['version'], { encoding: 'utf8' }).trim();
  } catch {
    return undefined;
  }
}

function ciRequired(): boolean {
  const ci = process.env.CI;
  return ci !== undefined && ci !== '' && ci !== '0' && ci.toLowerCase() !== 'false';
}

const openssl = opensslVersion();
if (!openssl && !ciRequired()) console.warn('[tls] skipping the admin TLS tests: no openssl on PATH (set CI=1 to fail instead)');
const describeTls = openssl || ciRequired() ? describe : describe.skip;

function httpsGetText(url: string, ca: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsGet(url, { ca, timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}

describeTls('admin API over TLS', () => {
  let dir: string;
  let certFile: string;
  let keyFile: string;
  let cert: Buffer;
  let fulcrum: Fulcrum;

  const configWith = async (name: string, tls: Record<string, unknown>): Promise<string> => {
    const path = join(dir, name);
    await writeFile(path, stringify({ server: { admin: { tls } }, clusters: [{ name: 'web', endpoints: [{ address: '10.0.0.1', port: 80 }] }] }));
    return path;
  };
  const start = (configPath: string) =>
    startFulcrum({ configPath, xdsPort: 0, xdsAddress: '127.0.0.1', adminPort: 0, adminAddress: '127.0.0.1', logger: pino({ level: 'silent' }) });

  beforeAll(async () => {
    if (!openssl) throw new Error('openssl is MISSING but required under CI: the admin TLS tests cannot make a certificate');
    dir = await mkdtemp(join(tmpdir(), 'fulcrum-tls-'));
    certFile = join(dir, 'cert.pem');
    keyFile = join(dir, 'key.pem');
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '1',
        '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', keyFile, '-out', certFile],
      { stdio: 'pipe' },
    );
    cert = await readFile(certFile);
    fulcrum = await start(await configWith('fulcrum.yaml', { certFile, keyFile }));
  });

  afterAll(async () => {
    await fulcrum?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('serves /healthz over HTTPS with the configured certificate', async () => {
    const res = await httpsGetText(`https://127.0.0.1:${fulcrum.adminPort}/healthz`, cert);
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toMatchObject({ status: 'ok' });
  });

  it('is refused over plain HTTP', async () => {
    const err = await fetch(`http://127.0.0.1:${fulcrum.adminPort}/healthz`, { signal: AbortSignal.timeout(5_000) }).then(
      (res) => new Error(`plain HTTP got an answer: ${res.status}`),
      (e: unknown) => e as Error,
    );
    // Refused by the TLS server (connection closed), not merely slow.
    expect(err.name).not.toBe('TimeoutError');
    expect(err.message).toMatch(/fetch failed/);
  });

  it('is not trusted without the CA (it really is the configured certificate)', async () => {
    await expect(httpsGetText(`https://127.0.0.1:${fulcrum.adminPort}/healthz`, Buffer.from(''))).rejects.toThrow(/self[- ]signed|certificate/i);
  });

  it('fails to start naming the file when the key is unreadable', async () => {
    const missing = join(dir, 'nope.pem');
    await expect(start(await configWith('missing-key.yaml', { certFile, keyFile: missing }))).rejects.toThrow(
      `server.admin.tls.keyFile: cannot read ${missing}`,
    );
  });

  it('fails to start naming the files when they are not a certificate and its key', async () => {
    const bogus = join(dir, 'bogus.pem');
    await writeFile(bogus, 'not a certificate\n');
    await expect(start(await configWith('bogus-cert.yaml', { certFile: bogus, keyFile }))).rejects.toThrow(
      `server.admin.tls: ${bogus} / ${keyFile}: not a usable certificate and key`,
    );
  });
});

describe('server.admin.tls in the config file', () => {
  it('needs both files and nothing else', () => {
    const parse = (tls: unknown) => parseConfig(stringify({ server: { admin: { tls } } }), 'fulcrum.yaml');
    expect(parse({ certFile: 'c.pem', keyFile: 'k.pem' }).server.admin.tls).toEqual({ certFile: 'c.pem', keyFile: 'k.pem' });
    expect(parse(undefined).server.admin.tls).toBeUndefined();
    expect(() => parse({ certFile: 'c.pem' })).toThrow(ConfigError);
    expect(() => parse({ certFile: 'c.pem', keyFile: 'k.pem', ca: 'x' })).toThrow(/\/server\/admin\/tls/);
  });
});
