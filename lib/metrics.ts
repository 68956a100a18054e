import http from 'node:http';
import { collectDefaultMetrics, Registry } from 'prom-client';

/** Every metric this project defines starts with this (Prometheus naming: one namespace per application). */
export const METRIC_PREFIX = 'mcp_fleet_';

/**
 * A process's own registry with prom-client's default process metrics (event loop lag, heap,
 * GC, CPU). Never the global default registry: tests run several APIs and workers in one Jest
 * worker, and each composition root must count only its own process part.
 */
export function createMetricsRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return registry;
}

export interface MetricsServer {
  url: string;
  close(): Promise<void>;
}

/**
 * Serves `GET /metrics` (Prometheus text format) on a port of its own, never the API's, so
 * that the public listener never exposes it; loopback unless the operator binds it elsewhere.
 * Port 0 turns it off (undefined). Anything other than GET /metrics is a 404. The reference host
 * uses it too, so it imports nothing of the project (no logger: `onError` hears a failed collect).
 */
export async function startMetricsServer(
  registry: Registry,
  endpoint: { host: string; port: number },
  onError: (error: unknown) => void,
): Promise<MetricsServer | undefined> {
  if (endpoint.port === 0) return undefined;
  const server = http.createServer((req, res) => {
    const pathname = (req.url ?? '/').split('?')[0];
    if (pathname !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    registry.metrics().then(
      (text) => {
        res.writeHead(200, { 'content-type': registry.contentType });
        res.end(req.method === 'HEAD' ? undefined : text);
      },
      (error: unknown) => {
        // A collector failed (the database is down for a fleet gauge): a 500 makes the scrape's `up` say so.
        onError(error);
        res.writeHead(500, { 'content-type': 'text/plain' }).end('collecting metrics failed\n');
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(endpoint.port, endpoint.host, () => resolve());
  });
  const host = endpoint.host === '0.0.0.0' ? '127.0.0.1' : endpoint.host.includes(':') ? `[${endpoint.host}]` : endpoint.host;
  return {
    url: `http://${host}:${(server.address() as { port: number }).port}/metrics`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}
