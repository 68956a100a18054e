import type { LookupFunction } from 'node:net';
import { ErrorCode, McpError } from '@modelcontextprotocol/sdk/types.js';
import type { Logger } from './logger';
import { connectMcp, fetchThrough, fingerprint, type FetchFn, type McpConnection, type McpTarget } from './mcp-client';
import { connectionFailure } from './mcp-errors';

/**
 * The worker's MCP connections (lib/mcp-client.ts opens each one): one per server, reused,
 * replaced when the server's URL or token changes, closed when idle.
 */

interface PoolEntry {
  fingerprint: string;
  connection: Promise<McpConnection>;
  /** The connection finished opening (initialize answered). */
  open: boolean;
  lastUsed: number;
  busy: number;
  /** Tasks followed on the connection now (McpConnection.followingTasks). */
  followedTasks: number;
  /** The warm-up pings in flight, if any (warmControl). */
  warming?: Promise<unknown>;
}

/** A pooled connection's state, for the worker's `mcp_fleet_mcp_connections{state}`. */
export type PoolConnectionState = 'connecting' | 'busy' | 'idle';

/** How a `tools/call` ended: answered, answered with `isError`, or no answer (transport, timeout, protocol error). */
export type ToolCallOutcome = 'ok' | 'tool_error' | 'error';

/** Told of every `tools/call` on a pooled connection (the worker's metrics). */
export type ToolCallObserver = (tool: string, outcome: ToolCallOutcome, seconds: number) => void;

/**
 * The short requests' sockets, per server (lib/mcp-client.ts, splitFetch), kept open a minute
 * between requests (as long as the server keeps them: the reference host does). Up to 64, and
 * one per task followed is kept warm (warmControl): a cancel-all of 20 tasks sends its 20
 * tasks/cancel at once on 20 open sockets. With 16, four waited for the answer of another
 * (and its SSE stream's end), hundreds of milliseconds on a busy host; a socket opened for the
 * cancel costs more, since a Node server accepts one connection per event-loop turn.
 */
export const CONTROL_SOCKETS = { perOrigin: 64, keepAliveMs: 60_000 };

/**
 * One live MCP connection per server, reused across activities. The key includes a hash of
 * url + transport + token, so a changed URL or rotated token opens a new connection and closes
 * the old one on the next use — without any message from the API process.
 */
export class McpClientPool {
  private readonly entries = new Map<string, PoolEntry>();

  private sweeper?: NodeJS.Timeout;

  private readonly through?: { fetch: FetchFn; close(): Promise<void> };

  /** The sockets of the short requests (lib/mcp-client.ts, splitFetch), which no result stream holds. */
  private readonly control: { fetch: FetchFn; connected(url: string): number; close(): Promise<void> };

  /**
   * `idleMs`: a connection unused that long is closed (servers deleted or no longer checked do
   * not keep sockets open for the worker's lifetime). Default 10 minutes.
   * `lookup`: how the pool's sockets resolve host names (the worker's is the URL policy's
   * policyLookup, so a connection goes only to an address that passed the policy); default DNS.
   */
  constructor(
    private readonly options: {
      timeoutMs: number;
      logger?: Logger;
      idleMs?: number;
      lookup?: LookupFunction;
      onToolCall?: ToolCallObserver;
    },
  ) {
    if (options.lookup) this.through = fetchThrough(options.lookup);
    this.control = fetchThrough(options.lookup, CONTROL_SOCKETS);
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

  /** How many pooled connections are opening, in use, or idle. */
  connectionStates(): Record<PoolConnectionState, number> {
    const states = { connecting: 0, busy: 0, idle: 0 };
    for (const entry of this.entries.values()) states[!entry.open ? 'connecting' : entry.busy > 0 ? 'busy' : 'idle']++;
    return states;
  }

  /**
   * Times every `tools/call` request of the connection for `onToolCall`, whichever activity
   * makes it: a plain call (the SDK's callTool goes through `request`) or a task-backed run's
   * start (lib/mcp-tasks.ts, whose wait for the result is the run's own duration).
   */
  private observed(connection: McpConnection): McpConnection {
    const observe = this.options.onToolCall;
    if (!observe) return connection;
    const { client } = connection;
    const request = client.request.bind(client);
    client.request = (async (...args: Parameters<typeof request>) => {
      const [message] = args;
      if (message.method !== 'tools/call') return request(...args);
      const name = (message.params as { name?: unknown } | undefined)?.name;
      const started = performance.now();
      let outcome: ToolCallOutcome = 'error';
      try {
        const result = await request(...args);
        outcome = (result as { isError?: unknown }).isError === true ? 'tool_error' : 'ok';
        return result;
      } finally {
        observe(typeof name === 'string' ? name : '', outcome, (performance.now() - started) / 1000);
      }
    }) as typeof client.request;
    return connection;
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
    const connection = connectMcp(target, this.options.timeoutMs, this.through?.fetch, this.control.fetch).then((opened) => {
      entry.open = true;
      opened.followingTasks = (change) => {
        entry.followedTasks = Math.max(0, entry.followedTasks + change);
        this.warmControl(entry, opened, target.url);
      };
      return this.observed(opened);
    });
    const entry: PoolEntry = { fingerprint: key, connection, open: false, lastUsed: Date.now(), busy: 1, followedTasks: 0 };
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

  /** Short-request sockets open to `url`'s server now (warm for a cancel). */
  controlSockets(url: string): number {
    return this.control.connected(url);
  }

  /**
   * Keeps a short-request socket open per task followed on the connection (up to the cap), so
   * that cancelling them all at once opens no connection: a Node host accepts one per event-loop
   * turn, and 20 new ones at a cancel-all were its slowest part. Missing sockets are opened by
   * concurrent pings (the free sockets answer some, each other one opens a socket), up to twice
   * what is needed, so a growing number of runs warms a few times rather than once per run. The
   * followers call it after each liveness poll that was answered too (never while the server is
   * away): sockets the polls leave idle close after a minute.
   */
  private warmControl(entry: PoolEntry, connection: McpConnection, url: string): void {
    const needed = Math.min(CONTROL_SOCKETS.perOrigin, entry.followedTasks);
    // Not for a connection dropped meanwhile (replaced, closed).
    if (entry.warming || ![...this.entries.values()].includes(entry) || this.control.connected(url) >= needed) return;
    const pings = Math.min(CONTROL_SOCKETS.perOrigin, 2 * needed);
    entry.warming = Promise.allSettled(
      Array.from({ length: pings }, () => connection.client.ping({ timeout: this.options.timeoutMs })),
    ).finally(() => (entry.warming = undefined));
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
    await Promise.all([this.through?.close(), this.control.close()]);
  }
}
