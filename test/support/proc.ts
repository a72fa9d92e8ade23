/**
 * A child process started by a test harness (etcd, kube-apiserver), with its output kept for
 * failure messages, and killed when the test process exits so that an interrupted run never
 * leaves one behind holding ports. `FULCRUM_KUBE_ECHO=1` mirrors the output to stderr.
 */
import type { ChildProcess } from 'node:child_process';

const echo = process.env.FULCRUM_KUBE_ECHO === '1';

// Processes still running when the test process exits are killed, so an interrupted run never
// leaves an etcd or kube-apiserver behind holding ports.
const running = new Map<ChildProcess, NodeJS.Signals>();
process.once('exit', () => {
  for (const [child, signal] of running) {
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  }
});

/** Sends `child` `signal` when this process exits, unless it exited first (the benches' servers too). */
export function killOnExit(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): void {
  running.set(child, signal);
  child.once('exit', () => running.delete(child));
}

/** A child process with its output kept for diagnostics. */
export class Proc {
  readonly output: string[] = [];
  private exitInfo: string | undefined;
  private readonly exited: Promise<void>;

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    const keep = (chunk: Buffer): void => {
      const text = chunk.toString('utf8');
      this.output.push(text);
      if (this.output.length > 2000) this.output.splice(0, this.output.length - 2000);
      if (echo) process.stderr.write(`[${name}] ${text}`);
    };
    killOnExit(child);
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exitInfo = `exited with ${signal ?? `code ${String(code)}`}`;
        resolve();
      });
    });
  }

  /** Undefined while running; "exited with ..." after. */
  get exit(): string | undefined {
    return this.exitInfo;
  }

  tail(lines = 40): string {
    return this.output.join('').split('\n').slice(-lines).join('\n');
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<void> {
    if (this.exitInfo !== undefined) return;
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}
