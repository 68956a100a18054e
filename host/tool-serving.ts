/**
 * How the host serves one contract tool: as a plain call (its own request's stream and signal),
 * or, for the tools that offer it, as an MCP task too (taskSupport 'optional'), whose run goes
 * on in the background with its notifications queued in the host's task store for tasks/result
 * and its cancel coming as tasks/cancel. The tools themselves (tools.ts) see only a CallIo.
 */
import type { McpServer, ToolCallback } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { CreateTaskRequestHandlerExtra } from '@modelcontextprotocol/sdk/experimental/tasks/interfaces.js';
import { ElicitResultSchema, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { HOST_CONTRACT, type HostTool } from '../lib/host-contract';
import type { HostTaskStore } from './task-store';
import type { CallIo, ToolContext, ToolDefinition, ToolExtra } from './tool-types';
import { serveTraced } from './host-tracing';
import { EventLoopTurns } from './event-loop-turns';

// The error results and the decline reason live here, and tools.ts imports them: tools.ts
// already loads this module to register its tools, which takes only types back.
/** Why a question is declined when the client declared no elicitation capability. */
export const NO_ELICITATION = 'the client cannot answer questions (it declared no elicitation capability)';

export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export function errorResult(text: string, structuredContent?: Record<string, unknown>): CallToolResult {
  return { isError: true, content: [{ type: 'text', text }], ...(structuredContent ? { structuredContent } : {}) };
}

export function register<T extends HostTool>(mcp: McpServer, name: T, tool: ToolDefinition<T>, context: ToolContext): void {
  const { args, result } = HOST_CONTRACT[name];
  // The SDK parses the arguments with `args` before calling: the handler's type is that schema's,
  // which TypeScript cannot follow through the table lookup.
  const handle = tool.handle as unknown as (args: unknown, io: CallIo) => Promise<CallToolResult>;
  const store = context.tasks;
  if (!tool.task || !store) {
    const callback = ((parsed: unknown, extra: ToolExtra) =>
      serveTraced(name, extra._meta, () => handle(parsed, plainIo(mcp, extra, context.inputTimeoutMs)))) as unknown as ToolCallback<
      typeof args
    >;
    mcp.registerTool(
      name,
      { description: tool.description, inputSchema: args, outputSchema: result, ...(tool.meta ? { _meta: tool.meta } : {}) },
      callback,
    );
    return;
  }
  // 'optional', not 'required': a client that knows nothing of tasks calls the tool as it always has.
  mcp.experimental.tasks.registerToolTask(
    name,
    {
      description: tool.description,
      inputSchema: args,
      outputSchema: result,
      execution: { taskSupport: 'optional' },
      ...(tool.meta ? { _meta: tool.meta } : {}),
    },
    {
      createTask: (async (parsed: unknown, extra: CreateTaskRequestHandlerExtra) => {
        // The store reads the request itself: whether it asked for a task, and its executionId.
        const created = await extra.taskStore.createTask({ ttl: extra.taskRequestedTtl });
        const { taskId } = created;
        if (store.isEphemeral(taskId)) {
          // A plain call: the SDK polls the store for this task, which is over by the time it looks.
          store.claimRun(taskId);
          const outcome = await serveTraced(name, extra._meta, () => handle(parsed, plainIo(mcp, extra, context.inputTimeoutMs))).catch(
            (error: unknown) => errorResult(errorText(error)),
          );
          await store.storeTaskResult(taskId, outcome.isError ? 'failed' : 'completed', outcome);
          return { task: (await store.getTask(taskId)) ?? created };
        }
        if (store.claimRun(taskId))
          runTask(store, taskId, parsed, extra, (args, io) => serveTraced(name, extra._meta, () => handle(args, io)), mcp, context);
        return { task: created };
      }) as never,
      getTask: (async (_args: unknown, extra: { taskId: string }) => {
        const task = await store.getTask(extra.taskId);
        if (!task) throw new Error(`Task not found: ${extra.taskId}`);
        return task;
      }) as never,
      getTaskResult: (async (_args: unknown, extra: { taskId: string }) => store.getTaskResult(extra.taskId)) as never,
    },
  );
}

/** Starts a task's run in the background: its notifications go to the store's queue, tasks/cancel aborts it. */
function runTask(
  store: HostTaskStore,
  taskId: string,
  parsed: unknown,
  extra: CreateTaskRequestHandlerExtra,
  handle: (args: unknown, io: CallIo) => Promise<CallToolResult>,
  mcp: McpServer,
  context: ToolContext,
): void {
  const cancel = new AbortController();
  const unsubscribe = store.onCancelled((id) => {
    if (id === taskId) cancel.abort(new Error('cancelled'));
  });
  // Asked of the session that created the task: a client that cannot answer is not asked.
  const canAsk = mcp.server.getClientCapabilities()?.elicitation !== undefined;
  const progressToken = extra._meta?.progressToken;
  const io: CallIo = {
    requestId: extra.requestId,
    signal: cancel.signal,
    ...(progressToken !== undefined ? { progressToken } : {}),
    notify: (notification, stop) => store.enqueue(taskId, notification, stop),
    ask: (params, signal) =>
      canAsk
        ? store.ask(taskId, params, { expireAfterMs: context.inputTimeoutMs, signal })
        : Promise.resolve({ action: 'decline', reason: NO_ELICITATION }),
  };
  const run = handle(parsed, io)
    .catch((error: unknown) => errorResult(errorText(error)))
    .then((outcome) => store.storeTaskResult(taskId, outcome.isError ? 'failed' : 'completed', outcome))
    .catch(() => undefined)
    .finally(unsubscribe);
  context.trackBackground(run);
}

/** A plain call's io: its own request's stream and signal. */
export function plainIo(mcp: McpServer, extra: ToolExtra, inputTimeoutMs: number): CallIo {
  const progressToken = extra._meta?.progressToken;
  // A run that streams fast gives the event loop a turn now and then (event-loop-turns.ts).
  const turns = new EventLoopTurns();
  return {
    requestId: extra.requestId,
    signal: extra.signal,
    ...(progressToken !== undefined ? { progressToken } : {}),
    notify: async (notification) => {
      await extra.sendNotification(notification);
      await turns.sent();
    },
    ask: async (params, signal) => {
      if (mcp.server.getClientCapabilities()?.elicitation === undefined) return { action: 'decline', reason: NO_ELICITATION };
      try {
        const answer = await extra.sendRequest({ method: 'elicitation/create', params }, ElicitResultSchema, {
          signal,
          timeout: inputTimeoutMs,
        });
        return { action: answer.action, ...(answer.content !== undefined ? { content: answer.content } : {}) };
      } catch (error) {
        return { action: 'cancel', reason: signal.aborted ? 'the run was stopped' : `the question got no answer: ${errorText(error)}` };
      }
    },
  };
}
