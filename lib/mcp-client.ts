import { createHash } from 'node:crypto';
import type { LookupFunction } from 'node:net';
import { Agent, fetch as undiciFetch } from 'undici';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport, SseError } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { ErrorCode, LoggingMessageNotificationSchema, McpError, type Implementation } from '@modelcontextprotocol/sdk/types.js';
import type { Logger } from './logger';
import { UnsafeUrlError } from './ssrf';
import { routeInputRequests, routeMcpTaskProgress, type InputListener, type ProgressListener } from './mcp-routing';

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
  /** The transport that worked (Streamable HTTP servers that only speak SSE fall back to it). */
  transport: McpTransportKind;
  protocolVersion?: string;
  serverInfo?: Implementation;
  fingerprint: string;
}

export type McpErrorKind =
  'unauthorized' | 'not_found' | 'refused' | 'unreachable' | 'timeout' | 'not_mcp' | 'http' | 'protocol' | 'redirect';

/** A failure phrased for a person; never carries the token. */
export class McpConnectionError extends Error {
  constructor(
    message: string,
    readonly kind: McpErrorKind,
    readonly httpStatus?: number,
  ) {
    super(message);
    this.name = 'McpConnectionError';
  }
}

export const CLIENT_INFO = { name: 'mcp-fleet', version: '0.1.0' };

function hostPort(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || (u.protocol === 'https:' ? 443 : 80)}`;
  } catch {
    return url;
  }
}

function causeCode(error: unknown): string | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

function httpStatusOf(error: unknown): number | undefined {
  // StreamableHTTPError uses -1 for "not an MCP answer"; SseError reports the 200 of a web page.
  if (error instanceof StreamableHTTPError || error instanceof SseError) {
    return typeof error.code === 'number' && error.code >= 300 && error.code < 600 ? error.code : undefined;
  }
  const match = /HTTP (\d{3})|\b(\d{3}) (?:Unauthorized|Forbidden|Not Found|Method Not Allowed)/.exec(
    error instanceof Error ? error.message : '',
  );
  return match ? Number(match[1] ?? match[2]) : undefined;
}

/** Turns whatever the SDK or fetch threw into the sentence an operator needs. */
export function describeMcpError(error: unknown, url: string, timeoutMs: number): McpConnectionError {
  if (error instanceof McpConnectionError) return error;
  if (error instanceof McpError && error.code === ErrorCode.RequestTimeout) {
    return new McpConnectionError(`timed out after ${Math.round(timeoutMs / 100) / 10} s`, 'timeout');
  }
  const status = httpStatusOf(error);
  if (status === 401 || status === 403)
    return new McpConnectionError(`the server rejected the master token (HTTP ${status})`, 'unauthorized', status);
  if (status === 404) return new McpConnectionError('no MCP endpoint at this URL (HTTP 404)', 'not_found', status);
  // The SDK follows a redirect only within the registered origin and only when it keeps the
  // request (so the token never travels elsewhere); any other redirect ends here.
  if (status !== undefined && status >= 300 && status < 400) {
    return new McpConnectionError(
      `the server redirects (HTTP ${status}) to a place mcp-fleet does not follow; register the final URL`,
      'redirect',
      status,
    );
  }
  if (status !== undefined) return new McpConnectionError(`the server answered HTTP ${status} instead of MCP`, 'http', status);
  const message = error instanceof Error ? error.message : String(error);
  // The SSE transport folds the fetch failure into its message instead of a cause.
  const code =
    causeCode(error) ?? /\b(ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ECONNRESET|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT)\b/.exec(message)?.[1];
  if (code === 'ECONNREFUSED') return new McpConnectionError(`connection refused at ${hostPort(url)}`, 'refused');
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN')
    return new McpConnectionError(`host not found: ${new URL(url).hostname}`, 'unreachable');
  if (
    code === 'ETIMEDOUT' ||
    code === 'UND_ERR_CONNECT_TIMEOUT' ||
    code === 'ABORT_ERR' ||
    (error as Error)?.name === 'AbortError' ||
    (error as Error)?.name === 'TimeoutError'
  ) {
    return new McpConnectionError(`timed out after ${Math.round(timeoutMs / 100) / 10} s`, 'timeout');
  }
  if (code === 'ECONNRESET' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH' || code === 'UND_ERR_SOCKET') {
    return new McpConnectionError(`could not reach ${hostPort(url)} (${code})`, 'unreachable');
  }
  // llhttp's parser codes: something listens there, but it is not an HTTP server.
  if (code?.startsWith('HPE_')) return new McpConnectionError(`${hostPort(url)} answered, but not with HTTP (${code})`, 'not_mcp');
  if (code?.startsWith('ERR_TLS') || code?.includes('CERT'))
    return new McpConnectionError(`TLS error talking to ${hostPort(url)} (${code})`, 'unreachable');
  if (error instanceof McpError) return new McpConnectionError(`the server answered with an MCP error: ${error.message}`, 'protocol');
  if (/content.type|json|unexpected token|parse|invalid/i.test(message)) {
    return new McpConnectionError(`the URL answered but does not speak MCP (${message.slice(0, 160)})`, 'not_mcp');
  }
  return new McpConnectionError(`MCP connection failed: ${message.slice(0, 200)}`, 'unreachable');
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new McpError(ErrorCode.RequestTimeout, 'timeout')), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

type FetchFn = (url: string | URL, init?: RequestInit) => Promise<Response>;

function authorizedFetch(token: string, base: FetchFn = fetch): FetchFn {
  return (url, init) => {
    const headers = new Headers(init?.headers);
    headers.set('Authorization', `Bearer ${token}`);
    return base(url, { ...init, headers });
  };
}

/** A fetch whose sockets resolve names through `lookup` (a pool's policyLookup), on its own connection pool. */
function fetchThrough(lookup: LookupFunction): { fetch: FetchFn; close(): Promise<void> } {
  const agent = new Agent({ connect: { lookup } });
  return {
    fetch: (url, init) => undiciFetch(url, { ...(init as object), dispatcher: agent }) as unknown as Promise<Response>,
    close: () => agent.close(),
  };
}

/** What a failed connection or call throws: the URL policy's own refusal (made at the socket's lookup) as it is, anything else as an McpConnectionError. */
function connectionFailure(error: unknown, url: string, timeoutMs: number): Error {
  for (let cause: unknown = error, depth = 0; cause instanceof Error && depth < 5; cause = cause.cause, depth++) {
    if (cause instanceof UnsafeUrlError) return cause;
  }
  return describeMcpError(error, url, timeoutMs);
}

function fingerprint(target: McpTarget): string {
  return createHash('sha256').update(`${target.url}\n${target.transport}\n${target.token}`).digest('hex');
}

async function connectWith(kind: McpTransportKind, target: McpTarget, timeoutMs: number, base?: FetchFn): Promise<McpConnection> {
  const url = new URL(target.url);
  const fetchWithAuth = authorizedFetch(target.token, base);
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
 * 404/405 to the POST (an SSE-only server) is retried over SSE once.
 */
export async function connectMcp(target: McpTarget, timeoutMs: number, base?: FetchFn): Promise<McpConnection> {
  try {
    return await connectWith(target.transport, target, timeoutMs, base);
  } catch (error) {
    const status = httpStatusOf(error);
    if (target.transport === 'streamable-http' && (status === 404 || status === 405)) {
      try {
        return await connectWith('sse', target, timeoutMs, base);
      } catch {
        // The SSE attempt failing says nothing new: report the original answer.
      }
    }
    throw connectionFailure(error, target.url, timeoutMs);
  }
}

interface PoolEntry {
  fingerprint: string;
  connection: Promise<McpConnection>;
  lastUsed: number;
  busy: number;
}

/**
 * One live MCP connection per server, reused across activities. The key includes a hash of
 * url + transport + token, so a changed URL or rotated token opens a new connection and closes
 * the old one on the next use — without any message from the API process.
 */
export class McpClientPool {
  private readonly entries = new Map<string, PoolEntry>();

  private sweeper?: NodeJS.Timeout;

  private readonly through?: { fetch: FetchFn; close(): Promise<void> };

  /**
   * `idleMs`: a connection unused that long is closed (servers deleted or no longer checked do
   * not keep sockets open for the worker's lifetime). Default 10 minutes.
   * `lookup`: how the pool's sockets resolve host names (the worker's is the URL policy's
   * policyLookup, so a connection goes only to an address that passed the policy); default DNS.
   */
  constructor(private readonly options: { timeoutMs: number; logger?: Logger; idleMs?: number; lookup?: LookupFunction }) {
    if (options.lookup) this.through = fetchThrough(options.lookup);
  }

  private sweepLater(): void {
    if (this.sweeper) return;
    const idleMs = this.options.idleMs ?? 10 * 60_000;
    this.sweeper = setInterval(
      () => {
        const now = Date.now();
        for (const [serverId, entry] of this.entries) {
          if (entry.busy === 0 && now - entry.lastUsed > idleMs) void this.drop(serverId);
        }
        if (this.entries.size === 0) {
          clearInterval(this.sweeper);
          this.sweeper = undefined;
        }
      },
      Math.max(10, Math.min(idleMs, 60_000)),
    );
    this.sweeper.unref();
  }

  get size(): number {
    return this.entries.size;
  }

  /**
   * The server's connection, counted as in use from this moment: the idle sweeper must not
   * close a connection that is still being opened (initialize can take longer than `idleMs`).
   * The caller gives the entry back with `release`.
   */
  private async acquire(target: McpTarget): Promise<{ connection: McpConnection; fresh: boolean; entry: PoolEntry }> {
    const key = fingerprint(target);
    const existing = this.entries.get(target.serverId);
    if (existing && existing.fingerprint === key) {
      existing.busy++;
      try {
        return { connection: await existing.connection, fresh: false, entry: existing };
      } catch {
        // fall through: the pending connect failed; a new one is attempted below
        this.release(existing);
      }
    }
    if (existing) await this.drop(target.serverId);
    const connection = connectMcp(target, this.options.timeoutMs, this.through?.fetch);
    const entry: PoolEntry = { fingerprint: key, connection, lastUsed: Date.now(), busy: 1 };
    this.entries.set(target.serverId, entry);
    this.sweepLater();
    try {
      return { connection: await connection, fresh: true, entry };
    } catch (error) {
      this.release(entry);
      if (this.entries.get(target.serverId) === entry) this.entries.delete(target.serverId);
      throw error;
    }
  }

  private release(entry: PoolEntry): void {
    entry.busy--;
    entry.lastUsed = Date.now();
  }

  /**
   * Runs `fn` on the server's pooled connection. A reused connection that fails at the transport
   * level (server restarted, session lost) is replaced once; errors come back as McpConnectionError.
   */
  async withConnection<T>(
    target: McpTarget,
    fn: (connection: McpConnection) => Promise<T>,
    canRetry: (error: unknown) => boolean = () => true,
  ): Promise<T> {
    const { connection, fresh, entry } = await this.acquire(target);
    const held = [entry];
    try {
      return await fn(connection);
    } catch (error) {
      const isProtocolAnswer =
        error instanceof McpError && error.code !== ErrorCode.ConnectionClosed && error.code !== ErrorCode.RequestTimeout;
      if (!canRetry(error)) throw error;
      if (fresh || isProtocolAnswer)
        throw error instanceof McpError && isProtocolAnswer ? error : connectionFailure(error, target.url, this.options.timeoutMs);
      this.options.logger?.debug({ serverId: target.serverId }, 'pooled MCP connection failed; reconnecting once');
      await this.drop(target.serverId);
      const retry = await this.acquire(target);
      held.push(retry.entry);
      try {
        return await fn(retry.connection);
      } catch (second) {
        throw second instanceof McpError && second.code !== ErrorCode.ConnectionClosed && second.code !== ErrorCode.RequestTimeout
          ? second
          : connectionFailure(second, target.url, this.options.timeoutMs);
      }
    } finally {
      for (const leased of held) this.release(leased);
    }
  }

  async drop(serverId: string): Promise<void> {
    const entry = this.entries.get(serverId);
    if (!entry) return;
    this.entries.delete(serverId);
    const connection = await entry.connection.catch(() => undefined);
    await connection?.client.close().catch(() => undefined);
  }

  async closeAll(): Promise<void> {
    clearInterval(this.sweeper);
    this.sweeper = undefined;
    await Promise.all([...this.entries.keys()].map((id) => this.drop(id)));
    await this.through?.close();
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
