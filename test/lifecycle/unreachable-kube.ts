import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Writes into `dir` a config with the Kubernetes source enabled against an API server nobody
 * serves (port 1): discovery keeps retrying in the background, start does not wait for it, and
 * /readyz stays 503. Returns the config's path.
 */
export async function unreachableKubeConfig(dir: string): Promise<string> {
  const kubeconfig = join(dir, 'kubeconfig.yaml');
  await writeFile(
    kubeconfig,
    'clusters: [{ name: c, cluster: { server: "https://127.0.0.1:1" } }]\nusers: [{ name: u, user: { token: t } }]\n' +
      'contexts: [{ name: x, context: { cluster: c, user: u } }]\ncurrent-context: x\n',
  );
  const config = join(dir, 'kube.yaml');
  await writeFile(config, `kubernetes: { enabled: true, kubeconfig: ${JSON.stringify(kubeconfig)} }\n`);
  return config;
}
