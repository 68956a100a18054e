import http from 'node:http';
import { createApp } from './app';
import type { AppDeps } from './deps';
import { attachSocketServer } from './realtime/socket';

export interface ApiServer {
  server: http.Server;
  io: ReturnType<typeof attachSocketServer>;
  url: string;
  close(): Promise<void>;
}

/** Wires the Koa app onto an HTTP server (Socket.IO attaches here too) and listens. */
export async function startApiServer(deps: AppDeps, port = deps.config.http.port, host = deps.config.http.host): Promise<ApiServer> {
  const app = createApp(deps);
  const server = http.createServer(app.callback());
  const io = attachSocketServer(server, deps);
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address() as { port: number };
  return {
    server,
    url: `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${address.port}`,
    io,
    close: () =>
      new Promise<void>((resolve, reject) => {
        // Socket.IO's close also closes the HTTP server.
        void io.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}
