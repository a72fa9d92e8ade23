import type { Component } from '../../runtime/lifecycle.js';
import type { KubernetesSettings } from '../config-file.js';
import { KubernetesSource, type KubernetesSourceLogger } from '../kubernetes.js';
import type { KubernetesContribution } from './mapping.js';

export interface KubernetesDiscoveryOptions {
  readonly settings: KubernetesSettings;
  readonly log: KubernetesSourceLogger & { error(obj: object, msg: string): void };
  /** Every complete view, after the first sync and after each change. */
  readonly onChange: (view: KubernetesContribution) => void;
}

/**
 * Kubernetes discovery as a component: starting does not wait for the API server (discovery keeps
 * retrying in the background); `synced` says whether the first complete view has arrived, for
 * readiness.
 */
export class KubernetesDiscovery implements Component {
  readonly name = 'kubernetes';
  private readonly source: KubernetesSource;
  private readonly log: KubernetesDiscoveryOptions['log'];
  private state: 'waiting' | 'synced' | 'failed' = 'waiting';
  private markSynced: () => void = () => undefined;
  /** Resolves when the first complete view has arrived (never, if discovery stops before). */
  readonly firstSync = new Promise<void>((resolve) => (this.markSynced = resolve));

  constructor(options: KubernetesDiscoveryOptions) {
    const { settings: k, log } = options;
    this.log = log;
    this.source = new KubernetesSource({
      kubeconfig: k.kubeconfig ? { mode: 'file', path: k.kubeconfig, ...(k.context ? { context: k.context } : {}) } : { mode: 'cluster' },
      ...(k.namespace ? { namespace: k.namespace } : {}),
      nodeTopology: k.nodeTopology,
      logger: log,
      onChange: options.onChange,
    });
  }

  get synced(): boolean {
    return this.state === 'synced';
  }

  /**
   * Why the first view has not arrived, for /readyz: until it has, proxies are not answered
   * (held-answers.ts), and an operator must see the cause there (RBAC, an API server down), not
   * only in the logs. E.g. `EndpointSlice: GET ...: endpointslices.discovery.k8s.io is forbidden: ... (403)`.
   */
  unsyncedReason(): string {
    const failing = this.source.status().informers.filter((i) => !i.synced && i.lastError !== undefined);
    const why = failing.map((i) => `${i.kind}: ${i.lastError ?? ''}`).join('; ');
    return why === '' ? 'kubernetes discovery has not synced' : `kubernetes discovery has not synced: ${why}`;
  }

  start(): void {
    this.source.start().then(
      () => {
        this.state = 'synced';
        this.markSynced();
      },
      (err: unknown) => {
        this.state = 'failed';
        this.log.error({ err }, 'kubernetes discovery stopped');
      },
    );
  }

  stop(): Promise<void> {
    return this.source.stop();
  }
}
