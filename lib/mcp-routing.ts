/**
 * What reaches a pooled MCP connection outside a request's own handlers, routed to the run it
 * belongs to: a task's progress (the SDK's per-request handlers know nothing of a task
 * followed from another request or connection) and a host's questions (elicitation/create).
 */
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import {
  ElicitRequestSchema,
  ProgressNotificationSchema,
  type ElicitRequest,
  type ElicitResult,
  type Progress,
} from '@modelcontextprotocol/sdk/types.js';
import { EXECUTION_META_KEY } from './host-contract';
import { relatedMcpTaskId } from './mcp-tasks';

export { EXECUTION_META_KEY };

export type ProgressListener = (progress: Progress) => void;
/** Answers a host's question (elicitation/create) for one run; `signal` aborts when the host withdraws it. */
export type InputListener = (
  params: ElicitRequest['params'],
  context: { mcpTaskId?: string; signal: AbortSignal },
) => Promise<ElicitResult>;

type NotificationHandler = (notification: unknown) => Promise<void> | void;

/**
 * Installs the client's one progress handler. Progress of a task (related-task meta, or a string
 * token: mcp-fleet's task calls use the execution id) goes to `progressListeners`; any other
 * goes to the SDK's own handler, which serves plain calls' `onprogress` and resets their
 * timeouts. That handler is reached through a private field (pinned by mcp-client.test.ts):
 * should it vanish, only the progress events of plain calls are lost, never their messages.
 */
export function routeMcpTaskProgress(client: Client): Map<string, ProgressListener> {
  const listeners = new Map<string, ProgressListener>();
  const sdkHandler = (client as unknown as { _notificationHandlers?: Map<string, NotificationHandler> })._notificationHandlers?.get(
    'notifications/progress',
  );
  client.setNotificationHandler(ProgressNotificationSchema, (notification) => {
    const { progressToken, ...progress } = notification.params;
    const mcpTaskId = relatedMcpTaskId(notification.params);
    if (mcpTaskId === undefined && typeof progressToken !== 'string') return sdkHandler?.(notification);
    // A task's progress nobody follows (between two attempts) is dropped: the SDK would only report an unknown token.
    const listener =
      (mcpTaskId && listeners.get(mcpTaskId)) || (typeof progressToken === 'string' ? listeners.get(progressToken) : undefined);
    listener?.(progress as Progress);
  });
  return listeners;
}

/** The answer for a question nobody here can route: the host goes on without it. */
const DECLINE: ElicitResult = { action: 'decline' };

/**
 * Installs the client's elicitation handler. A question carries its task (related-task meta,
 * which the SDK hands over as `extra.taskId`) or its run (`io.mcp-fleet/executionId`); a host
 * that names neither is routed to the single run it has on this connection (listeners are kept
 * by execution id and task id, so one run may appear under two keys).
 */
export function routeInputRequests(client: Client): Map<string, InputListener> {
  const listeners = new Map<string, InputListener>();
  client.setRequestHandler(ElicitRequestSchema, async (request, extra) => {
    const params = request.params;
    const meta = (params as { _meta?: Record<string, unknown> })._meta;
    const executionId = typeof meta?.[EXECUTION_META_KEY] === 'string' ? (meta[EXECUTION_META_KEY] as string) : undefined;
    const mcpTaskId = extra.taskId ?? relatedMcpTaskId(params);
    let listener = (mcpTaskId && listeners.get(mcpTaskId)) || (executionId && listeners.get(executionId)) || undefined;
    if (!listener && !mcpTaskId && !executionId) {
      const distinct = new Set(listeners.values());
      if (distinct.size === 1) listener = [...distinct][0];
    }
    if (!listener) return DECLINE;
    return listener(params, { mcpTaskId, signal: extra.signal });
  });
  return listeners;
}
