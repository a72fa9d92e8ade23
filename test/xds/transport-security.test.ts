import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ReloadingServerCredentials } from '../../src/xds/transport-security.js';
import { issue, makeCa, opensslFound, type CertFiles } from '../support/certs.js';
import { describeRequiring } from '../support/requires.js';

/** The certificate the credentials would hand to new connections now. */
const served = (c: ReloadingServerCredentials): string => String((c._getSecureContextOptions()?.cert as Buffer[] | Buffer | undefined)?.toString());

describeRequiring('openssl', opensslFound(), 'xDS TLS credentials that reload', () => {
  let dir: string;
  let first: CertFiles;
  let second: CertFiles;
  let live: CertFiles;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fulcrum-tls-reload-'));
    const ca = await makeCa(dir, 'ca');
    first = await issue(ca, 'first', ['DNS:localhost']);
    second = await issue(ca, 'second', ['DNS:localhost']);
    live = { cert: join(dir, 'live.pem'), key: join(dir, 'live.key') };
    await copyFile(first.cert, live.cert);
    await copyFile(first.key, live.key);
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('refuse to start on an unreadable file or a key that does not match, naming the setting', async () => {
    expect(() => new ReloadingServerCredentials({ certFile: join(dir, 'missing.pem'), keyFile: live.key })).toThrow(/server\.xds\.tls\.certFile: cannot read .*missing\.pem/);
    expect(() => new ReloadingServerCredentials({ certFile: first.cert, keyFile: second.key })).toThrow(/server\.xds\.tls: .*not a usable certificate/);
    const notPem = join(dir, 'not.pem');
    await writeFile(notPem, 'hello');
    expect(() => new ReloadingServerCredentials({ certFile: first.cert, keyFile: first.key, clientCaFile: notPem })).toThrow(/not a usable certificate, key and CA/);
  });

  it('apply a rotated pair only once it is whole; a half-written rotation keeps the previous pair and is reported once', async () => {
    const creds = new ReloadingServerCredentials({ certFile: live.cert, keyFile: live.key });
    expect(creds.reload()).toEqual({ result: 'unchanged' });
    expect(served(creds)).toBe(readFileSync(first.cert, 'utf8'));

    await copyFile(second.cert, live.cert); // new certificate, old key
    expect(creds.reload()).toMatchObject({ result: 'failed', error: expect.stringMatching(/not a usable certificate/) as unknown });
    expect(creds.reload()).toEqual({ result: 'unchanged' });
    expect(served(creds)).toBe(readFileSync(first.cert, 'utf8'));

    await copyFile(second.key, live.key);
    expect(creds.reload()).toMatchObject({ result: 'reloaded', fingerprint: expect.stringMatching(/^[0-9A-F:]+$/) as unknown });
    expect(served(creds)).toBe(readFileSync(second.cert, 'utf8'));
  });
});
