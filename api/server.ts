import http from 'node:http';
import { createApp } from './app';
import type { AppDeps } from './deps';

export interface ApiServer {
  server: http.Server;
  url: string;
  close(): Promise<void>;
}

/** Wires the Koa app onto an HTTP server (Socket.IO attaches here too) and listens. */
export async function startApiServer(deps: AppDeps, port = deps.config.http.port, host = deps.config.http.host): Promise<ApiServer> {
  const app = createApp(deps);
  const server = http.createServer(app.callback());
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address() as { port: number };
  return {
    server,
    url: `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${address.port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeIdleConnections();
      }),
  };
}
