import type { Server, Socket } from 'node:net';

/**
 * Closes a connection as it is accepted when its peer (`peerOf` of its remote address) already
 * holds `max`, and counts each peer's open ones until they close. The map holds only peers with a
 * connection open.
 */
export function capPeerConnections(server: Pick<Server, 'on'>, max: number, peerOf: (address: string) => string, onRefused: () => void): void {
  const open = new Map<string, number>();
  server.on('connection', (socket: Socket) => {
    const peer = peerOf(socket.remoteAddress ?? 'unknown');
    const n = open.get(peer) ?? 0;
    if (n >= max) {
      onRefused();
      socket.destroy();
      return;
    }
    open.set(peer, n + 1);
    socket.on('close', () => {
      const left = (open.get(peer) ?? 1) - 1;
      if (left > 0) open.set(peer, left);
      else open.delete(peer);
    });
  });
}
