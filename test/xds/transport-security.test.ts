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
  /** Valid for one day where the others are for two. */
  let shortLived: CertFiles;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fulcrum-tls-reload-'));
    const ca = await makeCa(dir, 'ca');
    first = await issue(ca, 'first', ['DNS:localhost']);
    second = await issue(ca, 'second', ['DNS:localhost']);
    shortLived = await issue(ca, 'short-lived', ['DNS:localhost'], dir, 1);
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

  it('keep serving the previous pair when the rotated certificate has expired, and refuse to start on an expired one', async () => {
    // A day and a half on: the two-day certificates are still valid, the one-day one has expired.
    const later = () => Date.now() + 36 * 3600_000;
    const files = { cert: join(dir, 'expiring.pem'), key: join(dir, 'expiring.key') };
    await copyFile(first.cert, files.cert);
    await copyFile(first.key, files.key);
    const creds = new ReloadingServerCredentials({ certFile: files.cert, keyFile: files.key }, later);

    await copyFile(shortLived.key, files.key);
    await copyFile(shortLived.cert, files.cert);
    expect(creds.reload()).toMatchObject({ result: 'failed', error: expect.stringMatching(/server\.xds\.tls\.certFile: .*expiring\.pem: the certificate expired on /) as unknown });
    expect(creds.reload()).toEqual({ result: 'unchanged' });
    expect(served(creds)).toBe(readFileSync(first.cert, 'utf8'));

    expect(() => new ReloadingServerCredentials({ certFile: shortLived.cert, keyFile: shortLived.key }, later)).toThrow(/short-lived\.pem: the certificate expired on /);
    // A valid rotation after it is applied.
    await copyFile(second.key, files.key);
    await copyFile(second.cert, files.cert);
    expect(creds.reload()).toMatchObject({ result: 'reloaded' });
    expect(served(creds)).toBe(readFileSync(second.cert, 'utf8'));
  });
});
