/**
 * A real HTTP server on a loopback port that records every request it receives (method, path
 * and Authorization header): the witness that a token was, or was not, sent somewhere.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface CapturedRequest {
  method: string;
  path: string;
  authorization: string | undefined;
}

export interface CaptureServer {
  /** http://127.0.0.1:PORT/mcp */
  url: string;
  port: number;
  requests: CapturedRequest[];
  close(): Promise<void>;
}

/** By default every request answers 401, as an MCP server that does not know the token would. */
export async function startCaptureServer(respond?: (req: IncomingMessage, res: ServerResponse) => void): Promise<CaptureServer> {
  const requests: CapturedRequest[] = [];
  const server = createServer((req, res) => {
    requests.push({ method: req.method ?? '', path: req.url ?? '', authorization: req.headers.authorization });
    req.resume();
    if (respond) return respond(req, res);
    res.writeHead(401, { 'content-type': 'application/json' });
    res.end('{"error":"unauthorized"}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    port,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
