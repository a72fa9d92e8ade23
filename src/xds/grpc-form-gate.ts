import type { ClientForm } from './client-form.js';

/** Where a stream's first answer goes once it may be sent (the held answers, then the initial-sync queue). */
export interface AnswerQueue {
  push(task: () => void): () => void;
}

/**
 * The longest a gRPC client's first answer waits for its form. Past it (a translation that keeps
 * failing) it gets Envoy's form rather than nothing: fail static.
 */
export const GRPC_FORM_WAIT_MS = 5_000;

interface Held {
  readonly task: () => void;
  /** Drops the task from wherever it is now. */
  drop: () => void;
}

/**
 * Holds a proxyless gRPC client's first answer until gRPC's form is published. The form is turned
 * on by the first gRPC client (Publisher.serveGrpcForm); with a big catalog it is encoded ahead in
 * turns, and a client answered meanwhile got Envoy's form, then its own a moment later: every
 * endpoint's locality appeared at once, so gRPC built a child balancer (and a connection) per
 * endpoint and dropped the locality it had just built (grpc-assignments.ts: the form must not flip).
 */
export class GrpcFormGate implements AnswerQueue {
  private readonly held = new Set<Held>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly next: AnswerQueue,
    /** Whether gRPC's form is published (the cache holds the default group's). */
    private readonly ready: () => boolean,
    /** Asks for gRPC's form (XdsServerOptions.onClientForm). */
    private readonly request: () => void,
    private readonly waitMs = GRPC_FORM_WAIT_MS,
  ) {}

  /** Queues `task` at once for an Envoy or once gRPC's form is out; returns what drops it. */
  pushFor(form: ClientForm, task: () => void): () => void {
    if (form !== 'grpc' || this.ready()) return this.next.push(task);
    this.request();
    if (this.ready()) return this.next.push(task);
    const entry: Held = { task, drop: () => this.held.delete(entry) };
    this.held.add(entry);
    this.timer ??= setTimeout(() => this.release(), this.waitMs);
    return () => entry.drop();
  }

  push(task: () => void): () => void {
    return this.next.push(task);
  }

  /** The cache changed: once gRPC's form is out, the held answers go on. */
  check(): void {
    if (this.held.size > 0 && this.ready()) this.release();
  }

  /** Clients held now (for the held-answers gauge). */
  get size(): number {
    return this.held.size;
  }

  private release(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const entries = [...this.held];
    this.held.clear();
    for (const entry of entries) entry.drop = this.next.push(entry.task);
  }

  /** Stops the timer (the server stopping); held answers stay held, their streams are ending. */
  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
