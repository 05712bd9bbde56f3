/**
 * A loopback TCP load balancer (node:net) in front of the gateways, so that SDK clients reconnect
 * "to the other gateway" as they would behind a real one: each new connection goes to the next
 * backend in weighted round robin; a backend that refuses the connection (its process is dead) is
 * skipped and the next one tried, so a client only sees a failure when every backend refuses.
 * Bytes are piped both ways untouched (HTTP upgrades and WebSocket frames included); when either
 * side closes, the other is closed, so a killed gateway's clients see their sockets drop.
 */
import { createServer, type Socket, connect as tcpConnect } from 'node:net';

export interface Backend {
  name: string;
  port: number;
  /** Share of new connections relative to the others (default 1). */
  weight?: number;
}

export interface Balancer {
  url: string;
  port: number;
  /** Connections accepted so far per backend name. */
  routed: Map<string, number>;
  /** Connections open now per backend name. */
  open(): Map<string, number>;
  /** Connections no backend accepted. */
  refused(): number;
  close(): Promise<void>;
}

export async function startBalancer(backends: readonly Backend[]): Promise<Balancer> {
  // Weighted round robin: backend i appears weight(i) times in the rotation.
  const rotation = backends.flatMap((b) => Array.from({ length: Math.max(1, b.weight ?? 1) }, () => b));
  let next = 0;
  let refused = 0;
  const routed = new Map(backends.map((b) => [b.name, 0]));
  const openBy = new Map<Socket, string>();
  const sockets = new Set<Socket>();

  const connectFrom = (start: number, tried: number, client: Socket) => {
    if (tried >= rotation.length || client.destroyed) {
      refused++;
      client.destroy();
      return;
    }
    const backend = rotation[(start + tried) % rotation.length] as Backend;
    const upstream = tcpConnect(backend.port, '127.0.0.1');
    let connected = false;
    upstream.once('connect', () => {
      connected = true;
      routed.set(backend.name, (routed.get(backend.name) ?? 0) + 1);
      openBy.set(client, backend.name);
      sockets.add(upstream);
      client.pipe(upstream).pipe(client);
      client.resume();
    });
    upstream.on('error', () => {
      // Before the connection: this backend is down, try the next one. After: the close below ends both.
      if (!connected) connectFrom(start, tried + 1, client);
    });
    upstream.on('close', () => {
      sockets.delete(upstream);
      if (connected) client.destroy();
    });
    client.on('close', () => {
      openBy.delete(client);
      upstream.destroy();
    });
  };

  const server = createServer({ pauseOnConnect: true }, (client) => {
    sockets.add(client);
    client.on('error', () => {});
    client.on('close', () => sockets.delete(client));
    const start = next;
    next = (next + 1) % rotation.length;
    connectFrom(start, 0, client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    routed,
    open() {
      const counts = new Map(backends.map((b) => [b.name, 0]));
      for (const name of openBy.values()) counts.set(name, (counts.get(name) ?? 0) + 1);
      return counts;
    },
    refused: () => refused,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
