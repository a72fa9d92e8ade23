import { describe, expect, it } from 'vitest';
import { ExecCredential, parseExecPlugin, type ExecPlugin } from '../../src/sources/kubernetes/exec-credential.js';

const plugin: ExecPlugin = parseExecPlugin(
  { apiVersion: 'client.authentication.k8s.io/v1beta1', command: 'bin/get-token', args: ['--cluster', 'a'], env: [{ name: 'REGION', value: 'eu' }] },
  '/etc/kube',
  'kubeconfig user u',
);

/** A plugin run that answers the scripted outputs in turn and counts its runs. */
function scripted(outputs: string[]): { run: () => Promise<string>; runs: () => number } {
  let n = 0;
  return { run: () => Promise.resolve(outputs[Math.min(n++, outputs.length - 1)] ?? ''), runs: () => n };
}
const credential = (token: string, expires?: string): string =>
  JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1beta1', kind: 'ExecCredential', status: { token, ...(expires ? { expirationTimestamp: expires } : {}) } });

describe('exec credential plugins', () => {
  it('parses the kubeconfig entry: a command with a folder is relative to the kubeconfig, args and env kept', () => {
    expect(plugin).toMatchObject({ command: '/etc/kube/bin/get-token', args: ['--cluster', 'a'], env: { REGION: 'eu' } });
    expect(parseExecPlugin({ apiVersion: 'client.authentication.k8s.io/v1', command: 'aws' }, '/x', 'u').command).toBe('aws');
    expect(() => parseExecPlugin({ apiVersion: 'client.authentication.k8s.io/v1', command: 'aws', env: [{ name: 'A' }] }, '/x', 'user u')).toThrow(
      /user u: exec.env\[0\] needs a name and a value/,
    );
  });

  it('reuses the token until shortly before it expires; concurrent requests share one run', async () => {
    let now = Date.parse('2026-12-02T00:00:00Z');
    const s = scripted([credential('t1', '2026-12-02T00:15:00Z'), credential('t2', '2026-12-02T00:30:00Z')]);
    const exec = new ExecCredential(plugin, s.run, () => now);
    expect(await Promise.all([exec.authorization(), exec.authorization()])).toEqual(['Bearer t1', 'Bearer t1']);
    now += 14 * 60_000;
    expect(await exec.authorization()).toBe('Bearer t1');
    expect(s.runs()).toBe(1);
    now += 55_000; // within 10 s of expiry
    expect(await exec.authorization()).toBe('Bearer t2');
    expect(s.runs()).toBe(2);
  });

  it('a token without expiry is kept until the API server refuses it (401)', async () => {
    const s = scripted([credential('a'), credential('b')]);
    const exec = new ExecCredential(plugin, s.run);
    expect(await exec.authorization()).toBe('Bearer a');
    expect(await exec.authorization()).toBe('Bearer a');
    exec.invalidate();
    expect(await exec.authorization()).toBe('Bearer b');
    expect(s.runs()).toBe(2);
  });

  it('clear errors for output that is not a usable credential', async () => {
    const reject = (out: string): Promise<string> => new ExecCredential(plugin, () => Promise.resolve(out)).authorization();
    await expect(reject('not json')).rejects.toThrow(/user u: exec plugin output is not an ExecCredential/);
    await expect(reject(JSON.stringify({ status: {} }))).rejects.toThrow(/user u: exec plugin returned no status.token/);
    await expect(reject(JSON.stringify({ status: { clientCertificateData: 'x', clientKeyData: 'y' } }))).rejects.toThrow(/client certificate; only tokens/);
  });
});
