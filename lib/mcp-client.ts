import { createHash } from 'node:crypto';
import { context, propagation, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import type { LookupFunction } from 'node:net';
import { Agent, Pool, fetch as undiciFetch } from 'undici';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { ErrorCode, LoggingMessageNotificationSchema, McpError, type Implementation } from '@modelcontextprotocol/sdk/types.js';
import { connectionFailure, httpStatusOf } from './mcp-errors';
import { routeInputRequests, routeMcpTaskProgress, type InputListener, type ProgressListener } from './mcp-routing';
import { tracer } from './tracing';

export { EXECUTION_META_KEY, routeInputRequests, routeMcpTaskProgress, type InputListener, type ProgressListener } from './mcp-routing';

export type McpTransportKind = 'streamable-http' | 'sse';

/** Everything needed to reach one server. Built by an activity right after decrypting the token. */
export interface McpTarget {
  serverId: string;
  url: string;
  transport: McpTransportKind;
  token: string;
}

export type MessageListener = (data: Record<string, unknown>, level: string) => void;

export interface McpConnection {
  client: Client;
  /**
   * `notifications/message` listeners by execution id: one connection carries the runs of every
   * agent on the server, and the host tags each message with its executionId.
   */
  messageListeners: Map<string, MessageListener>;
  /**
   * `notifications/progress` listeners of task-backed runs, by task id or by string progress
   * token: a task's queued progress arrives on a later `tasks/result`, possibly on another
   * connection, where the SDK's own per-request handlers know nothing of it.
   */
  progressListeners: Map<string, ProgressListener>;
  /**
   * Who answers the host's questions, by execution id (and by task id for a task-backed run):
   * a question is routed by its task, else by its `io.mcp-fleet/executionId` meta, else to the
   * one run on the connection; anything else is declined.
   */
  inputListeners: Map<string, InputListener>;
  /** Told of every error the client reports outside a request (a dropped SSE stream leaves its request pending). */
  streamErrors: Set<(error: Error) => void>;
  /** Which tools the server runs as MCP tasks; filled by one tools/list on first use (lib/mcp-tasks.ts). */
  mcpTaskTools?: Promise<Set<string>>;
  /**
   * Told by a task's follower when it starts (+1) and stops (-1) following a task on this
   * connection, and at each of its liveness polls (0): the pool keeps a warm short-request
   * socket per task followed, for the task's cancel (lib/mcp-pool.ts). Unset on a connection of no pool.
   */
  followingTasks?: (change: 1 | 0 | -1) => void;
  /** The transport that worked (Streamable HTTP servers that only speak SSE fall back to it). */
  transport: McpTransportKind;
  protocolVersion?: string;
  serverInfo?: Implementation;
  fingerprint: string;
}

export const CLIENT_INFO = { name: 'mcp-fleet', version: '0.1.0' };

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new McpError(ErrorCode.RequestTimeout, 'timeout')), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export type FetchFn = (url: string | URL, init?: RequestInit) => Promise<Response>;

function authorizedFetch(token: string, base: FetchFn = fetch): FetchFn {
  return (url, init) => {
    const headers = new Headers(init?.headers);
    headers.set('Authorization', `Bearer ${token}`);
    return base(url, { ...init, headers });
  };
}

/**
 * A fetch on its own pool of sockets, which resolve names through `lookup` (a pool's
 * policyLookup) when given; `sockets` bounds them per origin and sets how long an idle one stays
 * open (the server's own keep-alive, when it sends one, may shorten it). `connected(url)`: the
 * sockets open to the URL's origin now.
 */
export function fetchThrough(
  lookup?: LookupFunction,
  sockets: { perOrigin?: number; keepAliveMs?: number } = {},
): { fetch: FetchFn; connected(url: string): number; close(): Promise<void> } {
  const pools = new Map<string, Pool>();
  const agent = new Agent({
    ...(lookup ? { connect: { lookup } } : {}),
    ...(sockets.perOrigin ? { connections: sockets.perOrigin } : {}),
    ...(sockets.keepAliveMs ? { keepAliveTimeout: sockets.keepAliveMs, keepAliveMaxTimeout: sockets.keepAliveMs } : {}),
    // The Agent's own default, kept by origin so that its sockets can be counted.
    factory: (origin, options) => {
      const pool = new Pool(origin, options);
      pools.set(new URL(String(origin)).origin, pool);
      return pool;
    },
  });
  return {
    fetch: (url, init) => undiciFetch(url, { ...(init as object), dispatcher: agent }) as unknown as Promise<Response>,
    connected: (url) => pools.get(new URL(url).origin)?.stats.connected ?? 0,
    close: () => agent.close(),
  };
}

/**
 * Whether an HTTP request of the transport may hold its socket for as long as a run: the GET of
 * the server's event stream, `tasks/result` (answered when the task ends) and a plain
 * `tools/call` (answered when the call ends). Every other request is answered at once.
 */
export function holdsItsSocket(init?: RequestInit): boolean {
  if (init?.method !== 'POST' || typeof init.body !== 'string') return true;
  let message: { method?: unknown; params?: { task?: unknown } };
  try {
    message = JSON.parse(init.body) as typeof message;
  } catch {
    return true;
  }
  return message.method === 'tasks/result' || (message.method === 'tools/call' && message.params?.task === undefined);
}

/**
 * The fetch of one connection: requests that hold their socket for a run's length go over
 * `streams`, the short ones (a task's start, tasks/get, tasks/cancel, answers to the host's
 * questions) over `control`, a pool of sockets of their own. Over HTTP/1.1 a socket carries one
 * request at a time, and a task's start leaves its socket to the task's `tasks/result`: with
 * one pool, the cancel of 20 running tasks found every socket held and opened 20 new ones,
 * which a busy host accepts one per event-loop turn. The control sockets the starts used stay
 * open (keep-alive) and warm for the next short request; a burst of them (20 cancels at once)
 * waits for a warm socket rather than opening more (McpClientPool's CONTROL_SOCKETS).
 */
function splitFetch(streams: FetchFn, control: FetchFn): FetchFn {
  return (url, init) => (holdsItsSocket(init) ? streams(url, init) : control(url, init));
}

export function fingerprint(target: McpTarget): string {
  return createHash('sha256').update(`${target.url}\n${target.transport}\n${target.token}`).digest('hex');
}

/**
 * Every request on the connection (tools/call, tools/list, ping, tasks/*) as an OpenTelemetry
 * client span, `tools/call <tool>` or the method, under whatever span is active (the activity's),
 * with its W3C context in `params._meta.traceparent`/`tracestate` so the host's spans join the
 * trace (docs/host-protocol.md). Attributes stay bounded: the method, the tool name, the server
 * id, the outcome; never arguments or results. With tracing off the span is the no-op one and
 * the request goes out untouched.
 */
function traceRequests(client: Client, serverId: string): void {
  const request = client.request.bind(client);
  client.request = ((req: { method: string; params?: Record<string, unknown> }, schema: unknown, options?: unknown) => {
    const tool = req.method === 'tools/call' && typeof req.params?.name === 'string' ? req.params.name : undefined;
    const span = tracer().startSpan(tool ? `tools/call ${tool}` : req.method, {
      kind: SpanKind.CLIENT,
      attributes: { 'mcp.method': req.method, 'mcp.server.id': serverId, ...(tool ? { 'mcp.tool': tool } : {}) },
    });
    if (!span.isRecording()) return (request as (...args: unknown[]) => Promise<unknown>)(req, schema, options);
    const carrier: Record<string, string> = {};
    propagation.inject(trace.setSpan(context.active(), span), carrier);
    const params = { ...req.params, _meta: { ...(req.params?._meta as Record<string, unknown> | undefined), ...carrier } };
    return (request as (...args: unknown[]) => Promise<unknown>)({ ...req, params }, schema, options).then(
      (result) => {
        const failed = (result as { isError?: unknown } | undefined)?.isError === true;
        span.setAttribute('mcp.status', failed ? 'tool_error' : 'ok');
        if (failed) span.setStatus({ code: SpanStatusCode.ERROR, message: 'the tool answered isError' });
        span.end();
        return result;
      },
      (error: unknown) => {
        span.setAttribute('mcp.status', 'error');
        span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof McpError ? `MCP error ${error.code}` : 'request failed' });
        span.end();
        throw error;
      },
    );
  }) as typeof client.request;
}

async function connectWith(
  kind: McpTransportKind,
  target: McpTarget,
  timeoutMs: number,
  base?: FetchFn,
  control?: FetchFn,
): Promise<McpConnection> {
  const url = new URL(target.url);
  const fetchWithAuth = authorizedFetch(target.token, control ? splitFetch(base ?? fetch, control) : base);
  const transport: Transport =
    kind === 'sse'
      ? new SSEClientTransport(url, { fetch: fetchWithAuth, eventSourceInit: { fetch: fetchWithAuth } })
      : new StreamableHTTPClientTransport(url, {
          fetch: fetchWithAuth,
          reconnectionOptions: {
            maxRetries: 0,
            initialReconnectionDelay: 1000,
            maxReconnectionDelay: 1000,
            reconnectionDelayGrowFactor: 1,
          },
        });
  let protocolVersion: string | undefined;
  const setVersion = transport.setProtocolVersion?.bind(transport);
  transport.setProtocolVersion = (version: string) => {
    protocolVersion = version;
    setVersion?.(version);
  };
  // Form mode only: mcp-fleet relays a host's question to a person as a flat form (domain/runs/inputs.ts).
  const client = new Client(CLIENT_INFO, { capabilities: { elicitation: { form: {} } } });
  const messageListeners = new Map<string, MessageListener>();
  client.setNotificationHandler(LoggingMessageNotificationSchema, (notification) => {
    const data = notification.params.data as Record<string, unknown> | undefined;
    const executionId = typeof data?.executionId === 'string' ? data.executionId : undefined;
    if (executionId) messageListeners.get(executionId)?.(data!, notification.params.level);
  });
  const progressListeners = routeMcpTaskProgress(client);
  const inputListeners = routeInputRequests(client);
  traceRequests(client, target.serverId);
  const streamErrors = new Set<(error: Error) => void>();
  client.onerror = (error) => {
    for (const listener of streamErrors) listener(error);
  };
  try {
    await withTimeout(client.connect(transport, { timeout: timeoutMs }), timeoutMs);
  } catch (error) {
    await client.close().catch(() => undefined);
    throw error;
  }
  return {
    client,
    messageListeners,
    progressListeners,
    inputListeners,
    streamErrors,
    transport: kind,
    protocolVersion,
    serverInfo: client.getServerVersion(),
    fingerprint: fingerprint(target),
  };
}

/**
 * Connects over the server's transport. A server registered as Streamable HTTP that answers
 * 404/405 to the POST (an SSE-only server) is retried over SSE once. With `control`, the short
 * requests go over it (splitFetch).
 */
export async function connectMcp(target: McpTarget, timeoutMs: number, base?: FetchFn, control?: FetchFn): Promise<McpConnection> {
  try {
    return await connectWith(target.transport, target, timeoutMs, base, control);
  } catch (error) {
    const status = httpStatusOf(error);
    if (target.transport === 'streamable-http' && (status === 404 || status === 405)) {
      try {
        return await connectWith('sse', target, timeoutMs, base, control);
      } catch {
        // The SSE attempt failing says nothing new: report the original answer.
      }
    }
    throw connectionFailure(error, target.url, timeoutMs);
  }
}

/** The text parts of a tools/call result, joined: what a host said in words. */
export function toolResultText(content: unknown): string {
  if (!Array.isArray(content)) return '';
  return content
    .map((c: { type?: string; text?: string }) => (c?.type === 'text' ? (c.text ?? '') : ''))
    .join('\n')
    .trim();
}
