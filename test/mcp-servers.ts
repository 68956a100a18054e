/**
 * Real MCP servers (official `@modelcontextprotocol/sdk` server side) on ephemeral loopback
 * ports, for integration tests of the platform's MCP client. Nothing here fakes the protocol:
 * the MCP endpoints are `McpServer` instances behind the SDK's own transports, served by plain
 * `node:http` servers. The non-MCP helpers (`startNotMcpServer`, `startHtmlOkServer`,
 * `closedPortUrl`) model the ways a URL can fail to be an MCP server.
 *
 * See test/mcp-servers.test.ts for what the SDK client reports against each of them.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { sendJson } from '../host/http';
import { HOST_TOOLS } from '../lib/host-contract';

/** The tools a host MCP server exposes to the control plane. */
export const HOST_TOOL_NAMES = HOST_TOOLS;

export interface TestMcpServer {
  /** Where a client connects (Streamable HTTP endpoint, SSE GET endpoint, or a non-MCP URL). */
  url: string;
  port: number;
  /** The bearer token the server requires ('' for the non-MCP servers, which check nothing). */
  token: string;
  /** HTTP requests received so far, on any path. */
  requests: number;
  /** Stops listening and destroys every open connection (SSE streams included). */
  close(): Promise<void>;
}

export interface McpServerOptions {
  /** Required bearer token; default a random one. */
  token?: string;
  /** Tool names to expose; default HOST_TOOL_NAMES. */
  tools?: string[];
  /** Artificial delay before answering every HTTP request (a "slow" server). */
  delayMs?: number;
  /** serverInfo name; default 'test-host'. */
  name?: string;
  /** serverInfo version; default '1.0.0'. */
  version?: string;
  /** MCP endpoint path; default '/mcp'. */
  path?: string;
}

export type StreamableTestMcpServer = TestMcpServer & {
  /** Every tools/call answered, in order. */
  calls: TestToolCall[];
  /** Replaces the tool set the NEXT tools/list returns (descriptions of kept tools are kept). */
  setTools(names: string[]): void;
  /** Changes one tool's description for the NEXT tools/list. */
  setToolDescription(name: string, description: string): void;
};

interface ToolState {
  names: string[];
  descriptions: Map<string, string>;
}

function defaultDescription(name: string): string {
  return `Test tool ${name}`;
}

function randomToken(): string {
  return randomBytes(16).toString('hex');
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** One tools/call a test server answered. */
export interface TestToolCall {
  tool: string;
  args: Record<string, unknown>;
}

/** A fresh McpServer exposing the current tool set (one per request in stateless mode); each call answered joins `calls`. */
function buildMcpServer(info: { name: string; version: string }, tools: ToolState, calls: TestToolCall[] = []): McpServer {
  const server = new McpServer({ name: info.name, version: info.version });
  for (const name of tools.names) {
    server.registerTool(
      name,
      {
        description: tools.descriptions.get(name) ?? defaultDescription(name),
        inputSchema: {
          name: z.string().optional(),
          input: z.record(z.string(), z.unknown()).optional(),
        },
      },
      async (args): Promise<CallToolResult> => {
        calls.push({ tool: name, args });
        return {
          content: [{ type: 'text', text: JSON.stringify({ ok: true, tool: name }) }],
          structuredContent: { ok: true, tool: name, args },
        };
      },
    );
  }
  return server;
}

function hasBearer(req: IncomingMessage, token: string): boolean {
  return req.headers.authorization === `Bearer ${token}`;
}

function sendUnauthorized(req: IncomingMessage, res: ServerResponse): void {
  req.resume();
  sendJson(res, 401, { error: 'unauthorized' });
}

function sendMethodNotAllowed(req: IncomingMessage, res: ServerResponse, allow: string): void {
  req.resume();
  sendJson(res, 405, { jsonrpc: '2.0', error: { code: -32000, message: 'Method not allowed.' }, id: null }, { allow });
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** Reads and parses a JSON body; answers a JSON-RPC parse error itself and returns undefined on failure. */
async function readJsonBody(req: IncomingMessage, res: ServerResponse): Promise<{ body: unknown } | undefined> {
  const text = await readBody(req);
  try {
    return { body: JSON.parse(text) as unknown };
  } catch {
    sendJson(res, 400, { jsonrpc: '2.0', error: { code: -32700, message: 'Parse error' }, id: null });
    return undefined;
  }
}

function pathOf(req: IncomingMessage): { pathname: string; searchParams: URLSearchParams } {
  const url = new URL(req.url ?? '/', 'http://127.0.0.1');
  return { pathname: url.pathname, searchParams: url.searchParams };
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

function closeServer(server: Server, beforeClose?: () => Promise<void>): () => Promise<void> {
  let closing: Promise<void> | undefined;
  return () => {
    closing ??= (async () => {
      await beforeClose?.();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    })();
    return closing;
  };
}

/** Runs an async request handler, turning a thrown error into a 500 instead of an unhandled rejection. */
function guarded(
  handler: (req: IncomingMessage, res: ServerResponse) => Promise<void>,
): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    handler(req, res).catch((error: unknown) => {
      sendJson(res, 500, {
        jsonrpc: '2.0',
        error: { code: -32603, message: `Internal server error: ${String(error)}` },
        id: null,
      });
    });
  };
}

/**
 * A healthy host: Streamable HTTP in stateless mode (a new McpServer + transport per request,
 * `sessionIdGenerator: undefined`). POST <path> carries JSON-RPC; GET/DELETE <path> answer 405
 * (no standalone SSE stream, no sessions); other paths 404. Every request needs the bearer token.
 */
export async function startMcpServer(options: McpServerOptions = {}): Promise<StreamableTestMcpServer> {
  const token = options.token ?? randomToken();
  const mcpPath = options.path ?? '/mcp';
  const info = { name: options.name ?? 'test-host', version: options.version ?? '1.0.0' };
  const tools: ToolState = { names: [...(options.tools ?? HOST_TOOL_NAMES)], descriptions: new Map() };

  const server = createServer(
    guarded(async (req, res) => {
      state.requests += 1;
      if (options.delayMs) await sleep(options.delayMs);
      const { pathname } = pathOf(req);
      if (pathname !== mcpPath) {
        req.resume();
        sendJson(res, 404, { error: 'not found' });
        return;
      }
      if (!hasBearer(req, token)) {
        sendUnauthorized(req, res);
        return;
      }
      if (req.method !== 'POST') {
        sendMethodNotAllowed(req, res, 'POST');
        return;
      }
      const parsed = await readJsonBody(req, res);
      if (!parsed) return;

      const mcp = buildMcpServer(info, tools, state.calls);
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
      res.on('close', () => {
        void transport.close();
        void mcp.close();
      });
      await mcp.connect(transport);
      await transport.handleRequest(req, res, parsed.body);
    }),
  );

  const port = await listen(server);
  const state: StreamableTestMcpServer = {
    url: `http://127.0.0.1:${port}${mcpPath}`,
    port,
    token,
    requests: 0,
    calls: [],
    close: closeServer(server),
    setTools(names: string[]) {
      tools.names = [...names];
    },
    setToolDescription(name: string, description: string) {
      tools.descriptions.set(name, description);
    },
  };
  return state;
}

/**
 * A legacy host speaking only the HTTP+SSE transport (protocol 2024-11-05): GET /sse opens the
 * event stream (whose first event names POST /messages?sessionId=...), POST /messages carries
 * requests. Both need the bearer token. POST /sse (what a Streamable-HTTP-first client tries)
 * answers 405 so such a client can fall back; any other path answers 404.
 */
export async function startSseOnlyMcpServer(options: Omit<McpServerOptions, 'path'> = {}): Promise<TestMcpServer> {
  const token = options.token ?? randomToken();
  const info = { name: options.name ?? 'test-host', version: options.version ?? '1.0.0' };
  const tools: ToolState = { names: [...(options.tools ?? HOST_TOOL_NAMES)], descriptions: new Map() };
  const sessions = new Map<string, { transport: SSEServerTransport; mcp: McpServer }>();

  const server = createServer(
    guarded(async (req, res) => {
      state.requests += 1;
      if (options.delayMs) await sleep(options.delayMs);
      const { pathname, searchParams } = pathOf(req);

      if (pathname === '/sse') {
        if (!hasBearer(req, token)) {
          sendUnauthorized(req, res);
          return;
        }
        if (req.method !== 'GET') {
          sendMethodNotAllowed(req, res, 'GET');
          return;
        }
        const transport = new SSEServerTransport('/messages', res);
        const mcp = buildMcpServer(info, tools);
        const sessionId = transport.sessionId;
        sessions.set(sessionId, { transport, mcp });
        res.on('close', () => {
          sessions.delete(sessionId);
          void mcp.close();
        });
        await mcp.connect(transport); // writes the 200 headers and the `endpoint` event
        return;
      }

      if (pathname === '/messages') {
        if (!hasBearer(req, token)) {
          sendUnauthorized(req, res);
          return;
        }
        if (req.method !== 'POST') {
          sendMethodNotAllowed(req, res, 'POST');
          return;
        }
        const session = sessions.get(searchParams.get('sessionId') ?? '');
        if (!session) {
          req.resume();
          sendJson(res, 404, { error: 'unknown session' });
          return;
        }
        const parsed = await readJsonBody(req, res);
        if (!parsed) return;
        await session.transport.handlePostMessage(req, res, parsed.body);
        return;
      }

      req.resume();
      sendJson(res, 404, { error: 'not found' });
    }),
  );

  const port = await listen(server);
  const state: TestMcpServer = {
    url: `http://127.0.0.1:${port}/sse`,
    port,
    token,
    requests: 0,
    close: closeServer(server, async () => {
      const open = [...sessions.values()];
      sessions.clear();
      await Promise.all(open.map(({ mcp }) => mcp.close())); // ends each SSE response
    }),
  };
  return state;
}

async function startPlainServer(handle: (req: IncomingMessage, res: ServerResponse) => void, path: string): Promise<TestMcpServer> {
  const server = createServer((req, res) => {
    state.requests += 1;
    req.resume();
    req.on('end', () => handle(req, res));
  });
  const port = await listen(server);
  const state: TestMcpServer = {
    url: `http://127.0.0.1:${port}${path}`,
    port,
    token: '',
    requests: 0,
    close: closeServer(server),
  };
  return state;
}

/** Not an MCP server: every request (GET/POST under /mcp or anywhere) answers 404 text/html. */
export function startNotMcpServer(): Promise<TestMcpServer> {
  return startPlainServer((_req, res) => {
    res.writeHead(404, { 'content-type': 'text/html; charset=utf-8' });
    res.end('<html>Not Found</html>');
  }, '/mcp');
}

/** An ordinary web page: every request answers 200 text/html. url = http://127.0.0.1:PORT/mcp */
export function startHtmlOkServer(): Promise<TestMcpServer> {
  return startPlainServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end('<html>hello</html>');
  }, '/mcp');
}

/** http://127.0.0.1:PORT/mcp on a port that was free a moment ago: connecting is refused. */
export async function closedPortUrl(): Promise<string> {
  const server = createServer();
  const port = await listen(server);
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}/mcp`;
}
