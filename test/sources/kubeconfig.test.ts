import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadKubeConfig } from '../../src/sources/kubernetes.js';

/** Outside a pod, `kubernetes.enabled` without a kubeconfig: a clear error, not a retry loop on Invalid URL. */
describe('loadKubeConfig in cluster mode', () => {
  const saved = { ...process.env };
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'fulcrum-kubeconfig-'));
    delete process.env.KUBERNETES_SERVICE_HOST;
    delete process.env.KUBERNETES_SERVICE_PORT;
    process.env.HOME = dir;
    process.env.KUBECONFIG = join(dir, 'missing.yaml');
  });
  afterEach(() => {
    process.env = { ...saved };
    rmSync(dir, { recursive: true, force: true });
  });

  it('outside a pod with no kubeconfig anywhere: says so, and what to set', () => {
    expect(() => loadKubeConfig({ mode: 'cluster' })).toThrow(/not running in a Kubernetes pod.*no kubeconfig found.*kubernetes\.kubeconfig.*\$KUBECONFIG.*kubernetes\.enabled: false/);
  });

  it('outside a pod with $KUBECONFIG: uses it, as kubectl would', () => {
    const file = join(dir, 'config.yaml');
    writeFileSync(
      file,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters: [{ name: c, cluster: { server: "https://127.0.0.1:6443" } }]',
        'users: [{ name: u, user: { token: t } }]',
        'contexts: [{ name: x, context: { cluster: c, user: u } }]',
        'current-context: x',
      ].join('\n'),
    );
    process.env.KUBECONFIG = file;
    expect(loadKubeConfig({ mode: 'cluster' }).server).toBe('https://127.0.0.1:6443');
  });
});

describe('loadKubeConfig from a file', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'fulcrum-kubeconfig-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('a kubeconfig that is not YAML, or missing, is named in the error (fulcrum serve prints only the message)', () => {
    const file = join(dir, 'broken.kc');
    writeFileSync(file, 'clusters: [\n');
    expect(() => loadKubeConfig({ mode: 'file', path: file })).toThrow(new RegExp(`^kubeconfig ${file}: not YAML \\(.*line 2`));
    const missing = join(dir, 'missing.kc');
    expect(() => loadKubeConfig({ mode: 'file', path: missing })).toThrow(new RegExp(`^kubeconfig ${missing}: cannot be read \\(ENOENT`));
  });
});
