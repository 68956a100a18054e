/**
 * Proves the fixtures in ./mcp-servers.ts behave like the real servers they stand for, using the
 * official SDK client (@modelcontextprotocol/sdk 1.32.2, Node 20 global fetch).
 *
 * WHAT THE SDK CLIENT THROWS FROM `client.connect(transport)` (observed, asserted below). Useful for
 * classifying connection failures. Note that neither error class sets `.name` (both are
 * "Error"), so match with `instanceof` (or on the message prefix), never on `.name`:
 *
 * StreamableHTTPClientTransport (POSTs `initialize` first). The first failing POST rejects connect with:
 *   - 401 (missing or wrong bearer)    → StreamableHTTPError, code 401,
 *       message 'Streamable HTTP error: Error POSTing to endpoint: {"error":"unauthorized"}'
 *       (the message contains the response BODY, not the number 401; use `.code`)
 *   - 404 text/html                    → StreamableHTTPError, code 404,
 *       message 'Streamable HTTP error: Error POSTing to endpoint: <html>Not Found</html>'
 *   - 200 text/html (a plain web page) → StreamableHTTPError, code -1,
 *       message 'Streamable HTTP error: Unexpected content type: text/html; charset=utf-8'
 *   - connection refused               → TypeError 'fetch failed' (undici), no `.code`;
 *       `.cause` is an Error with code 'ECONNREFUSED' (message 'connect ECONNREFUSED 127.0.0.1:PORT').
 *       (A DNS failure looks the same with cause.code 'ENOTFOUND'.) CAUTION: under Jest this
 *       TypeError comes from another realm, so `error instanceof TypeError` is FALSE in tests (true in
 *       plain Node); test `error.name === 'TypeError'` / `error.cause.code` instead.
 *   - SSE-only server (POST to its /sse url answers 405) → StreamableHTTPError, code 405,
 *       message 'Streamable HTTP error: Error POSTing to endpoint: <405 body>'. This is the signal to fall
 *       back to SSEClientTransport (the spec's backwards-compatibility rule says fall back on 4xx;
 *       the 404 case above is a 4xx too).
 *   (The GET for the optional standalone stream, which a 405 answers, never surfaces as an error.)
 *
 * SSEClientTransport (opens GET <url> as an EventSource and waits for the `endpoint` event):
 *   - 401                  → SseError, code 401, message 'SSE error: Non-200 status code (401)'
 *   - 404 text/html        → SseError, code 404, message 'SSE error: Non-200 status code (404)'
 *   - 405 (GET on a Streamable HTTP-only endpoint) → SseError, code 405, 'SSE error: Non-200 status code (405)'
 *   - 200 text/html        → SseError, code 200,
 *       message 'SSE error: Invalid content type, expected "text/event-stream"'
 *   - connection refused   → SseError, code undefined, no `.cause`,
 *       message 'SSE error: TypeError: fetch failed: connect ECONNREFUSED 127.0.0.1:PORT' in plain Node,
 *       but only 'SSE error: TypeError: fetch failed' under Jest (same realm issue as above: the
 *       eventsource package only appends the cause when `cause instanceof Error`)
 *
 * After connecting:
 *   - a request whose `timeout` (RequestOptions) elapses → McpError, code -32001 (ErrorCode.RequestTimeout),
 *       message 'MCP error -32001: Request timed out', data { timeout }
 *   - callTool on a tool the server does not have → does NOT throw; resolves
 *       { isError: true, content: [{ type: 'text', text: 'MCP error -32602: Tool <name> not found' }] }
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport, SseError, type SSEClientTransportOptions } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { ErrorCode, McpError } from '@modelcontextprotocol/sdk/types.js';
import {
  HOST_TOOL_NAMES,
  closedPortUrl,
  startHtmlOkServer,
  startMcpServer,
  startNotMcpServer,
  startSseOnlyMcpServer,
  type TestMcpServer,
} from './mcp-servers';

type EventSourceFetch = NonNullable<NonNullable<SSEClientTransportOptions['eventSourceInit']>['fetch']>;

const cleanups: Array<() => Promise<void>> = [];

afterEach(async () => {
  const pending = cleanups.splice(0).reverse();
  for (const cleanup of pending) await cleanup();
});

function track<T extends TestMcpServer>(server: T): T {
  cleanups.push(() => server.close());
  return server;
}

function newClient(): Client {
  const client = new Client({ name: 'mcp-fleet-test', version: '0.0.0' });
  cleanups.push(() => client.close());
  return client;
}

function streamableTransport(url: string, token: string): StreamableHTTPClientTransport {
  return new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { Authorization: `Bearer ${token}` } },
  });
}

function sseTransport(url: string, token: string): SSEClientTransport {
  // The SDK (1.32) already applies requestInit.headers to the EventSource GET; the custom
  // EventSource fetch sets the header too so this also holds for SDK versions that do not.
  const withBearer: EventSourceFetch = (input, init) => {
    const headers = new Headers(init.headers);
    headers.set('Authorization', `Bearer ${token}`);
    return fetch(input, { ...init, headers });
  };
  return new SSEClientTransport(new URL(url), {
    requestInit: { headers: { Authorization: `Bearer ${token}` } },
    eventSourceInit: { fetch: withBearer },
  });
}

async function connectError(transport: Transport): Promise<unknown> {
  const client = newClient();
  try {
    await client.connect(transport);
  } catch (error) {
    return error;
  }
  throw new Error('expected connect to fail');
}

async function toolNames(client: Client): Promise<string[]> {
  const { tools } = await client.listTools();
  return tools.map((tool) => tool.name).sort();
}

function parseText(result: Awaited<ReturnType<Client['callTool']>>): unknown {
  const content = result.content as Array<{ type: string; text?: string }>;
  expect(content[0]?.type).toBe('text');
  return JSON.parse(content[0]?.text ?? 'null') as unknown;
}

describe('startMcpServer (Streamable HTTP, stateless)', () => {
  it('serves initialize, ping, tools/list and tools/call', async () => {
    const server = track(await startMcpServer({ name: 'host-a', version: '2.3.4' }));
    const client = newClient();
    await client.connect(streamableTransport(server.url, server.token));

    expect(server.url).toBe(`http://127.0.0.1:${server.port}/mcp`);
    expect(client.getServerVersion()).toEqual({ name: 'host-a', version: '2.3.4' });
    await expect(client.ping()).resolves.toEqual({});
    expect(await toolNames(client)).toEqual([...HOST_TOOL_NAMES].sort());

    const { tools } = await client.listTools();
    const execute = tools.find((tool) => tool.name === 'execute_prompt');
    expect(execute?.description).toBe('Test tool execute_prompt');
    expect(execute?.inputSchema.type).toBe('object');

    const result = await client.callTool({ name: 'check_tool', arguments: { name: 'git' } });
    expect(result.isError).toBeFalsy();
    expect(parseText(result)).toEqual({ ok: true, tool: 'check_tool' });
    expect(result.structuredContent).toMatchObject({ ok: true, tool: 'check_tool' });
    expect(server.requests).toBeGreaterThanOrEqual(5);
  });

  it('uses defaults and honours the tools and path options', async () => {
    const plain = track(await startMcpServer());
    const client = newClient();
    await client.connect(streamableTransport(plain.url, plain.token));
    expect(client.getServerVersion()).toEqual({ name: 'test-host', version: '1.0.0' });
    expect(plain.token).toMatch(/^[0-9a-f]{32}$/);

    const custom = track(await startMcpServer({ tools: ['only_tool'], path: '/custom/mcp', token: 'secret' }));
    expect(custom.url).toBe(`http://127.0.0.1:${custom.port}/custom/mcp`);
    expect(custom.token).toBe('secret');
    const other = newClient();
    await other.connect(streamableTransport(custom.url, 'secret'));
    expect(await toolNames(other)).toEqual(['only_tool']);
  });

  it('setTools / setToolDescription change the next tools/list', async () => {
    const server = track(await startMcpServer());
    const client = newClient();
    await client.connect(streamableTransport(server.url, server.token));
    expect(await toolNames(client)).toEqual([...HOST_TOOL_NAMES].sort());

    server.setTools(['execute_prompt', 'check_tool', 'new_tool']);
    expect(await toolNames(client)).toEqual(['check_tool', 'execute_prompt', 'new_tool']);

    server.setToolDescription('check_tool', 'Checks a tool, v2');
    const { tools } = await client.listTools();
    expect(tools.find((tool) => tool.name === 'check_tool')?.description).toBe('Checks a tool, v2');
    expect(tools.find((tool) => tool.name === 'execute_prompt')?.description).toBe('Test tool execute_prompt');

    const added = await client.callTool({ name: 'new_tool', arguments: {} });
    expect(parseText(added)).toEqual({ ok: true, tool: 'new_tool' });

    // A removed tool: the call resolves with isError, it does not throw.
    const removed = await client.callTool({ name: 'install_tool', arguments: {} });
    expect(removed.isError).toBe(true);
    expect(JSON.stringify(removed.content)).toContain('Tool install_tool not found');
  });

  it('rejects a wrong or missing token with 401 before MCP (StreamableHTTPError code 401)', async () => {
    const server = track(await startMcpServer({ token: 'right' }));

    const wrong = await connectError(streamableTransport(server.url, 'wrong'));
    expect(wrong).toBeInstanceOf(StreamableHTTPError);
    expect((wrong as StreamableHTTPError).code).toBe(401);
    expect((wrong as Error).message).toBe('Streamable HTTP error: Error POSTing to endpoint: {"error":"unauthorized"}');

    const missing = await connectError(new StreamableHTTPClientTransport(new URL(server.url)));
    expect(missing).toBeInstanceOf(StreamableHTTPError);
    expect((missing as StreamableHTTPError).code).toBe(401);

    const response = await fetch(server.url, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
    expect(response.status).toBe(401);
    expect(await response.json()).toEqual({ error: 'unauthorized' });
  });

  it('a slow server delays every answer; a request timeout gives McpError RequestTimeout', async () => {
    const delayMs = 300;
    const server = track(await startMcpServer({ delayMs }));
    const client = newClient();
    await client.connect(streamableTransport(server.url, server.token));

    const started = performance.now();
    await client.ping();
    expect(performance.now() - started).toBeGreaterThanOrEqual(delayMs - 5); // timer granularity

    const timeout = await client.ping({ timeout: 50 }).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(timeout).toBeInstanceOf(McpError);
    expect((timeout as McpError).code).toBe(ErrorCode.RequestTimeout);
    expect((timeout as McpError).message).toBe('MCP error -32001: Request timed out');
  });
});

describe('startSseOnlyMcpServer (legacy HTTP+SSE)', () => {
  it('works with SSEClientTransport', async () => {
    const server = track(await startSseOnlyMcpServer({ name: 'legacy-host', version: '0.9.0' }));
    expect(server.url).toBe(`http://127.0.0.1:${server.port}/sse`);
    const client = newClient();
    await client.connect(sseTransport(server.url, server.token));

    expect(client.getServerVersion()).toEqual({ name: 'legacy-host', version: '0.9.0' });
    await expect(client.ping()).resolves.toEqual({});
    expect(await toolNames(client)).toEqual([...HOST_TOOL_NAMES].sort());
    const result = await client.callTool({ name: 'provision_agent', arguments: { name: 'a1' } });
    expect(parseText(result)).toEqual({ ok: true, tool: 'provision_agent' });
  });

  it('fails with StreamableHTTPClientTransport (StreamableHTTPError code 405), so a client can fall back', async () => {
    const server = track(await startSseOnlyMcpServer());
    const error = await connectError(streamableTransport(server.url, server.token));
    expect(error).toBeInstanceOf(StreamableHTTPError);
    expect((error as StreamableHTTPError).code).toBe(405);
    expect((error as Error).message).toMatch(/^Streamable HTTP error: Error POSTing to endpoint: /);

    // Streamable-HTTP-first with fallback on a 4xx, as the spec recommends.
    const client = newClient();
    await client.connect(sseTransport(server.url, server.token));
    await expect(client.ping()).resolves.toEqual({});
  });

  it('rejects a wrong token with 401 (SseError code 401) on the GET and on POST /messages', async () => {
    const server = track(await startSseOnlyMcpServer({ token: 'right' }));
    const error = await connectError(sseTransport(server.url, 'wrong'));
    expect(error).toBeInstanceOf(SseError);
    expect((error as SseError).code).toBe(401);
    expect((error as Error).message).toBe('SSE error: Non-200 status code (401)');

    const post = await fetch(`http://127.0.0.1:${server.port}/messages?sessionId=x`, { method: 'POST', body: '{}' });
    expect(post.status).toBe(401);
    expect(await post.json()).toEqual({ error: 'unauthorized' });

    const unknownSession = await fetch(`http://127.0.0.1:${server.port}/messages?sessionId=x`, {
      method: 'POST',
      body: '{}',
      headers: { Authorization: 'Bearer right', 'content-type': 'application/json' },
    });
    expect(unknownSession.status).toBe(404);
    await unknownSession.body?.cancel();

    const postSse = await fetch(server.url, { method: 'POST', body: '{}', headers: { Authorization: 'Bearer right' } });
    expect(postSse.status).toBe(405);
    await postSse.body?.cancel();
  });

  it('close() ends open SSE streams promptly', async () => {
    const server = await startSseOnlyMcpServer();
    const client = newClient();
    const closed = new Promise<void>((resolve) => {
      client.onclose = () => resolve();
    });
    await client.connect(sseTransport(server.url, server.token));
    const started = performance.now();
    await server.close();
    // Left open, the streams would hold close() until the client goes; the bound leaves a loaded machine room.
    expect(performance.now() - started).toBeLessThan(10_000);
    await client.ping({ timeout: 2000 }).catch(() => undefined);
    await client.close();
    await closed;
  });
});

describe('servers that are not MCP', () => {
  it('404 HTML: StreamableHTTPError code 404; SseError code 404', async () => {
    const server = track(await startNotMcpServer());
    expect(server.url).toBe(`http://127.0.0.1:${server.port}/mcp`);

    const error = await connectError(streamableTransport(server.url, 'any'));
    expect(error).toBeInstanceOf(StreamableHTTPError);
    expect((error as StreamableHTTPError).code).toBe(404);
    expect((error as Error).message).toBe('Streamable HTTP error: Error POSTing to endpoint: <html>Not Found</html>');

    const sseError = await connectError(sseTransport(server.url, 'any'));
    expect(sseError).toBeInstanceOf(SseError);
    expect((sseError as SseError).code).toBe(404);
    expect((sseError as Error).message).toBe('SSE error: Non-200 status code (404)');

    const get = await fetch(server.url);
    expect(get.status).toBe(404);
    expect(await get.text()).toBe('<html>Not Found</html>');
    expect(server.requests).toBeGreaterThanOrEqual(3);
  });

  it('200 HTML: StreamableHTTPError code -1 (unexpected content type); SseError code 200', async () => {
    const server = track(await startHtmlOkServer());

    const error = await connectError(streamableTransport(server.url, 'any'));
    expect(error).toBeInstanceOf(StreamableHTTPError);
    expect((error as StreamableHTTPError).code).toBe(-1);
    expect((error as Error).message).toBe('Streamable HTTP error: Unexpected content type: text/html; charset=utf-8');

    const sseError = await connectError(sseTransport(server.url, 'any'));
    expect(sseError).toBeInstanceOf(SseError);
    expect((sseError as SseError).code).toBe(200);
    expect((sseError as Error).message).toBe('SSE error: Invalid content type, expected "text/event-stream"');

    const get = await fetch(server.url);
    expect(get.status).toBe(200);
    expect(await get.text()).toBe('<html>hello</html>');
  });

  it('connection refused: TypeError "fetch failed" with cause.code ECONNREFUSED; SseError without code', async () => {
    const url = await closedPortUrl();
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/mcp$/);

    const error = await connectError(streamableTransport(url, 'any'));
    // Under Jest, undici's TypeError comes from the outer realm, so `instanceof TypeError` is false
    // there (it is true in plain Node): check `.name` instead.
    expect((error as Error).name).toBe('TypeError');
    expect((error as Error).message).toBe('fetch failed');
    expect(((error as Error).cause as NodeJS.ErrnoException).code).toBe('ECONNREFUSED');

    const sseError = await connectError(sseTransport(url, 'any'));
    expect(sseError).toBeInstanceOf(SseError);
    expect((sseError as SseError).code).toBeUndefined();
    // Plain Node: 'SSE error: TypeError: fetch failed: connect ECONNREFUSED 127.0.0.1:PORT'. Under Jest the
    // eventsource package's `instanceof Error` check on the cross-realm cause fails, so the suffix is missing.
    expect((sseError as Error).message).toMatch(/^SSE error: TypeError: fetch failed(: connect ECONNREFUSED 127\.0\.0\.1:\d+)?$/);
  });
});
