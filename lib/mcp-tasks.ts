/**
 * The one adapter for MCP tasks (protocol 2025-11-25, `@experimental` in the SDK): every task
 * request mcp-fleet makes goes through here, so the move to the tasks extension of the next
 * revision touches this file only. What the SDK does and does not do is in
 * docs/architecture.md ("Task-backed runs").
 *
 * Deliberately not used: `callTool` (throws for `taskSupport: 'required'` tools) and
 * `callToolStream`/`requestStream` (they poll and call `tasks/result` only once the task is
 * terminal, so the run's events would all arrive at the end).
 */
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import {
  CallToolResultSchema,
  CreateTaskResultSchema,
  ErrorCode,
  McpError,
  RELATED_TASK_META_KEY,
  type CallToolRequest,
  type CallToolResult,
  type Task as McpTask,
} from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { publishCancelStep } from './cancel-steps';

export const TERMINAL_MCP_TASK_STATUSES: ReadonlySet<McpTask['status']> = new Set(['completed', 'failed', 'cancelled']);

/** What a client needs to call a tool as a task: the server's capability and the tool's own `execution.taskSupport`. */
export async function mcpTaskToolsOf(client: Client, timeoutMs: number): Promise<Set<string>> {
  if (!client.getServerCapabilities()?.tasks?.requests?.tools?.call) return new Set();
  const names = new Set<string>();
  let cursor: string | undefined;
  do {
    const page = await client.listTools(cursor ? { cursor } : undefined, { timeout: timeoutMs });
    for (const tool of page.tools) {
      const support = tool.execution?.taskSupport;
      if (support === 'optional' || support === 'required') names.add(tool.name);
    }
    cursor = page.nextCursor;
  } while (cursor);
  return names;
}

/** A server that answered the call inline (it ignored `task`) gives the tool's result instead of a task. */
const StartAnswerSchema = z.union([CreateTaskResultSchema, CallToolResultSchema]);

export type McpTaskStart = { task: McpTask } | { result: CallToolResult };

export interface McpTaskRequestOptions {
  timeoutMs: number;
  signal?: AbortSignal;
}

/**
 * Sends `tools/call` augmented with `task: {ttl}`. The progress token is the caller's (mcp-fleet
 * uses the execution id): the host keeps it for the task's queued progress notifications, and a
 * string token still routes after a re-attach from another connection, where the SDK's numeric
 * request ids mean nothing.
 */
export async function startMcpToolTask(
  client: Client,
  call: CallToolRequest['params'],
  progressToken: string,
  ttlMs: number,
  options: McpTaskRequestOptions,
): Promise<McpTaskStart> {
  const params = { ...call, _meta: { ...call._meta, progressToken } };
  const answer = await forOneRequest(options.signal, (signal) =>
    client.request({ method: 'tools/call', params }, StartAnswerSchema, { task: { ttl: ttlMs }, timeout: options.timeoutMs, signal }),
  );
  return 'task' in answer && answer.task ? { task: answer.task as McpTask } : { result: answer as CallToolResult };
}

export function getMcpTask(client: Client, taskId: string, options: McpTaskRequestOptions): Promise<McpTask> {
  return forOneRequest(options.signal, (signal) => client.experimental.tasks.getTask(taskId, { timeout: options.timeoutMs, signal }));
}

/**
 * `tasks/result`: blocks until the task is terminal while the host streams the task's queued
 * notifications on the same response. The timeout is explicit because the SDK's default (60 s)
 * would end every longer run.
 */
export function getMcpTaskResult(client: Client, taskId: string, options: McpTaskRequestOptions): Promise<CallToolResult> {
  return forOneRequest(
    options.signal,
    (signal) =>
      client.experimental.tasks.getTaskResult(taskId, CallToolResultSchema, {
        timeout: options.timeoutMs,
        signal,
      }) as Promise<CallToolResult>,
  );
}

/**
 * Sends one request with a signal of its own that follows `signal` only until the request
 * settles. The SDK never removes the abort listener a request puts on its signal, so a run's
 * signal given as is would, on the run's cancel, send `notifications/cancelled` for every
 * request it ever carried (the task's start, each liveness poll): one more POST each, each on
 * a new connection to the host (the result streams hold the others), queued ahead of the
 * `tasks/cancel` that matters.
 */
async function forOneRequest<T>(signal: AbortSignal | undefined, send: (signal: AbortSignal | undefined) => Promise<T>): Promise<T> {
  if (!signal) return send(undefined);
  const own = new AbortController();
  const follow = () => own.abort(signal.reason);
  if (signal.aborted) follow();
  else signal.addEventListener('abort', follow, { once: true });
  try {
    return await send(own.signal);
  } finally {
    signal.removeEventListener('abort', follow);
  }
}

/** `tasks/cancel`, best effort: says whether the server took it (a finished or forgotten task is not an error here). */
export async function cancelMcpTask(client: Client, taskId: string, timeoutMs: number): Promise<boolean> {
  publishCancelStep({ step: 'tasks/cancel sent', mcpTaskId: taskId });
  try {
    await client.experimental.tasks.cancelTask(taskId, { timeout: timeoutMs });
    return true;
  } catch {
    return false;
  } finally {
    publishCancelStep({ step: 'tasks/cancel answered', mcpTaskId: taskId });
  }
}

/** The server's answer for a task id it does not have (expired, or lost with a restart). */
export function isMcpTaskNotFound(error: unknown): boolean {
  return error instanceof McpError && error.code === ErrorCode.InvalidParams && /task not found|not found/i.test(error.message);
}

/** The task a notification belongs to (`_meta["io.modelcontextprotocol/related-task"].taskId`). */
export function relatedMcpTaskId(params: unknown): string | undefined {
  const meta = (params as { _meta?: Record<string, unknown> } | undefined)?._meta;
  const related = meta?.[RELATED_TASK_META_KEY] as { taskId?: unknown } | undefined;
  return typeof related?.taskId === 'string' ? related.taskId : undefined;
}

/**
 * What `runsAsMcpTask` needs of a pooled connection (lib/mcp-client.ts's `McpConnection` is
 * one): its client, and where to keep the answer.
 */
export interface McpTaskToolsCache {
  client: Client;
  /** Which tools the server runs as MCP tasks; filled by one tools/list on first use. */
  mcpTaskTools?: Promise<Set<string>>;
}

/** Whether the connection's server runs `tool` as a task; asked once per pooled connection. */
export function runsAsMcpTask(connection: McpTaskToolsCache, tool: string, timeoutMs: number): Promise<boolean> {
  if (!connection.mcpTaskTools) {
    const asked = mcpTaskToolsOf(connection.client, timeoutMs);
    connection.mcpTaskTools = asked;
    // A failed tools/list is asked again next time rather than remembered as "no tasks".
    asked.catch(() => {
      if (connection.mcpTaskTools === asked) connection.mcpTaskTools = undefined;
    });
  }
  return connection.mcpTaskTools.then((tools) => tools.has(tool));
}
