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
  type Task,
} from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import type { McpConnection } from './mcp-client';

export type { Task } from '@modelcontextprotocol/sdk/types.js';

export const TERMINAL_TASK_STATUSES: ReadonlySet<Task['status']> = new Set(['completed', 'failed', 'cancelled']);

/** What a client needs to call a tool as a task: the server's capability and the tool's own `execution.taskSupport`. */
export async function taskToolsOf(client: Client, timeoutMs: number): Promise<Set<string>> {
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

export type TaskStart = { task: Task } | { result: CallToolResult };

export interface TaskRequestOptions {
  timeoutMs: number;
  signal?: AbortSignal;
}

/**
 * Sends `tools/call` augmented with `task: {ttl}`. The progress token is the caller's (mcp-fleet
 * uses the execution id): the host keeps it for the task's queued progress notifications, and a
 * string token still routes after a re-attach from another connection, where the SDK's numeric
 * request ids mean nothing.
 */
export async function startToolTask(client: Client, call: CallToolRequest['params'], progressToken: string, ttlMs: number, options: TaskRequestOptions): Promise<TaskStart> {
  const params = { ...call, _meta: { ...call._meta, progressToken } };
  const answer = await client.request({ method: 'tools/call', params }, StartAnswerSchema, { task: { ttl: ttlMs }, timeout: options.timeoutMs, signal: options.signal });
  return 'task' in answer && answer.task ? { task: answer.task as Task } : { result: answer as CallToolResult };
}

export function getTask(client: Client, taskId: string, options: TaskRequestOptions): Promise<Task> {
  return client.experimental.tasks.getTask(taskId, { timeout: options.timeoutMs, signal: options.signal });
}

/**
 * `tasks/result`: blocks until the task is terminal while the host streams the task's queued
 * notifications on the same response. The timeout is explicit because the SDK's default (60 s)
 * would end every longer run.
 */
export function getTaskResult(client: Client, taskId: string, options: TaskRequestOptions): Promise<CallToolResult> {
  return client.experimental.tasks.getTaskResult(taskId, CallToolResultSchema, { timeout: options.timeoutMs, signal: options.signal }) as Promise<CallToolResult>;
}

/** `tasks/cancel`, best effort: says whether the server took it (a finished or forgotten task is not an error here). */
export async function cancelTask(client: Client, taskId: string, timeoutMs: number): Promise<boolean> {
  try {
    await client.experimental.tasks.cancelTask(taskId, { timeout: timeoutMs });
    return true;
  } catch {
    return false;
  }
}

/** The server's answer for a task id it does not have (expired, or lost with a restart). */
export function isTaskNotFound(error: unknown): boolean {
  return error instanceof McpError && error.code === ErrorCode.InvalidParams && /task not found|not found/i.test(error.message);
}

/** The task a notification belongs to (`_meta["io.modelcontextprotocol/related-task"].taskId`). */
export function relatedTaskId(params: unknown): string | undefined {
  const meta = (params as { _meta?: Record<string, unknown> } | undefined)?._meta;
  const related = meta?.[RELATED_TASK_META_KEY] as { taskId?: unknown } | undefined;
  return typeof related?.taskId === 'string' ? related.taskId : undefined;
}

/** A task id stored as text: what the server gave, bounded to the column. */
export function isStorableTaskId(taskId: string): boolean {
  return taskId.length > 0 && taskId.length <= 200;
}

/** Whether the connection's server runs `tool` as a task; asked once per pooled connection. */
export function runsAsTask(connection: McpConnection, tool: string, timeoutMs: number): Promise<boolean> {
  if (!connection.taskTools) {
    const asked = taskToolsOf(connection.client, timeoutMs);
    connection.taskTools = asked;
    // A failed tools/list is asked again next time rather than remembered as "no tasks".
    asked.catch(() => {
      if (connection.taskTools === asked) connection.taskTools = undefined;
    });
  }
  return connection.taskTools.then((tools) => tools.has(tool));
}
