/**
 * When etcd last renewed a lease, as far as this process can prove: the time a keep-alive was
 * sent, not the time its answer was read. etcd renews the lease when the request reaches it; an
 * answer read late (a long GC pause, an event loop held, the process stopped) says the lease was
 * renewed then, and the replica, counting from the read, stayed unfenced past the lease's expiry
 * while etcd handed its clusters to another replica.
 *
 * Answers come back on the keep-alive stream in the order the requests went, so each answer is
 * credited to the oldest request still unanswered. A new stream starts afresh: requests on a
 * broken one are never answered.
 */
export class KeepAliveCredit {
  private sent: number[] = [];

  /** A keep-alive stream was (re)established. */
  restart(): void {
    this.sent = [];
  }

  /** A keep-alive was sent at `at`. */
  fired(at: number): void {
    this.sent.push(at);
  }

  /** An answer arrived: when its request was sent (undefined: no request known, no credit). */
  answered(): number | undefined {
    return this.sent.shift();
  }
}
