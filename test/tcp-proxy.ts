import net from 'node:net';

export interface TcpProxy {
  port: number;
  /** Connections opened through the proxy so far. */
  connections: number;
  /** Destroys every open connection on both sides, as a network failure would; new ones still go through. */
  dropAll(): void;
  close(): Promise<void>;
}

/** A loopback TCP proxy to `targetPort`, so a test can cut the connections between a worker and a host mid-stream. */
export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  const open = new Set<net.Socket>();
  const server = net.createServer((client) => {
    proxy.connections++;
    const upstream = net.connect(targetPort, '127.0.0.1');
    for (const socket of [client, upstream]) {
      open.add(socket);
      socket.on('close', () => open.delete(socket));
      socket.on('error', () => undefined);
    }
    client.pipe(upstream).pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const proxy: TcpProxy = {
    port: (server.address() as net.AddressInfo).port,
    connections: 0,
    dropAll() {
      for (const socket of open) socket.destroy();
    },
    close() {
      proxy.dropAll();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
  return proxy;
}
