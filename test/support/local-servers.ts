/**
 * Listening for a test's own HTTP servers (backends whose handlers the test writes itself): each
 * on 127.0.0.1 at a kernel-chosen port, and one close for all of them.
 */
import type http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface LocalServers {
  /** The servers' ports, in the order given. */
  readonly ports: number[];
  /** Stop listening and drop open (keep-alive, or held) connections, so close never waits on a client. */
  close(): Promise<void>;
}

export async function listenLocal(servers: readonly http.Server[]): Promise<LocalServers> {
  for (const s of servers) await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', () => resolve()));
  return {
    ports: servers.map((s) => (s.address() as AddressInfo).port),
    close: async () => {
      await Promise.all(servers.map((s) => new Promise<void>((resolve) => (s.closeAllConnections(), s.close(() => resolve())))));
    },
  };
}
