/**
 * The reference host's `tasks/result`, in place of the SDK's (modelled on the SDK example
 * examples/server/simpleTaskInteractive). The SDK's handler delivers a question through the
 * session that asked it, so a question asked for a task could never be answered from another
 * session, and a cancelled task without a result fails it. This one, in any session:
 *
 * - sends the task's queued notifications (with the related-task meta) on this request's stream,
 *   each removed from the queue only once it was sent;
 * - sends the task's pending question as elicitation/create on this stream, once per
 *   tasks/result, and hands the answer to the run; a stream that goes away leaves it pending
 *   for the next tasks/result;
 * - returns the task's result, with the related-task meta, once the task is terminal.
 */
import type { ServerResponse } from 'node:http';
import type { Server } from '@modelcontextprotocol/sdk/server/index.js';
import {
  ElicitResultSchema,
  ErrorCode,
  isJSONRPCRequest,
  McpError,
  RELATED_TASK_META_KEY,
  type RequestId,
  type Result,
} from '@modelcontextprotocol/sdk/types.js';
import { isTerminal } from '@modelcontextprotocol/sdk/experimental/tasks/interfaces.js';
import { EventLoopTurns } from './event-loop-turns';
import type { HostTaskStore } from './task-store';
import type { ToolExtra } from './tool-types';

/** Longest wait between two looks at the task, should a change go unnoticed. */
const MAX_WAIT_MS = 100;

/**
 * Which tasks/result requests lost their HTTP response midway. The SDK neither aborts the
 * handler of a request whose SSE stream the client dropped nor fails a send to it (the message
 * is silently dropped), so without this a handler left behind would go on taking the task's
 * events off the queue and losing them.
 */
export class ResponseWatch {
  private readonly gone = new Map<string, AbortController>();

  /** Watches the response of every tasks/result request in `body` (call before the transport handles it). */
  watch(body: unknown, sessionId: string, res: ServerResponse): void {
    for (const message of Array.isArray(body) ? body : [body]) {
      if (!isJSONRPCRequest(message) || message.method !== 'tasks/result') continue;
      const key = keyOf(sessionId, message.id);
      const controller = new AbortController();
      this.gone.set(key, controller);
      res.once('close', () => {
        if (!res.writableEnded) controller.abort(new Error('the client dropped the stream'));
        if (this.gone.get(key) === controller) this.gone.delete(key);
      });
    }
  }

  /** Aborts when the response of this request went away before it was answered. */
  signal(sessionId: string | undefined, requestId: RequestId): AbortSignal | undefined {
    return sessionId === undefined ? undefined : this.gone.get(keyOf(sessionId, requestId))?.signal;
  }
}

function keyOf(sessionId: string, requestId: RequestId): string {
  return `${sessionId}\n${String(requestId)}`;
}

export async function hostTaskResult(
  store: HostTaskStore,
  server: Server,
  taskId: string,
  requestExtra: ToolExtra,
  inputTimeoutMs: number,
  streamGone?: AbortSignal,
): Promise<Result> {
  const extra: ToolExtra = streamGone ? { ...requestExtra, signal: AbortSignal.any([requestExtra.signal, streamGone]) } : requestExtra;
  const asked = new Set<number>();
  // A backlog goes out a slice per turn of the event loop, not all in one (event-loop-turns.ts).
  const turns = new EventLoopTurns();
  for (;;) {
    const task = await store.getTask(taskId);
    if (!task) throw new McpError(ErrorCode.InvalidParams, `Failed to retrieve task: Task not found`);
    await deliverQueued(store, taskId, extra, turns);
    if (isTerminal(task.status)) {
      // What was queued between the look at the status and now goes out before the result.
      await deliverQueued(store, taskId, extra, turns);
      const result = await store.getTaskResult(taskId);
      return { ...result, _meta: { ...result._meta, [RELATED_TASK_META_KEY]: { taskId } } };
    }
    const pending = store.pendingInput(taskId);
    // A client that cannot answer is not asked; another one (or a later tasks/result) may.
    if (pending && !asked.has(pending.seq) && server.getClientCapabilities()?.elicitation !== undefined) {
      asked.add(pending.seq);
      await ask(store, taskId, pending, extra, inputTimeoutMs);
      continue;
    }
    if (extra.signal.aborted) throw new McpError(ErrorCode.ConnectionClosed, 'Request was cancelled');
    await store.nextChange(taskId, MAX_WAIT_MS, extra.signal);
  }
}

async function deliverQueued(store: HostTaskStore, taskId: string, extra: ToolExtra, turns: EventLoopTurns): Promise<void> {
  for (let message = store.peek(taskId); message; message = store.peek(taskId)) {
    // Throws when this request's stream is gone: the message stays queued for the next tasks/result.
    await extra.sendNotification(message as Parameters<ToolExtra['sendNotification']>[0]);
    // Gone meanwhile: it may not have reached the client, so it stays for the next tasks/result.
    if (extra.signal.aborted) throw new McpError(ErrorCode.ConnectionClosed, 'Request was cancelled');
    store.shift(taskId);
    await turns.sent();
  }
}

/** Sends the pending question on this stream; the answer goes to the run unless the question was settled meanwhile. */
async function ask(
  store: HostTaskStore,
  taskId: string,
  pending: NonNullable<ReturnType<HostTaskStore['pendingInput']>>,
  extra: ToolExtra,
  inputTimeoutMs: number,
): Promise<void> {
  // Stop asking once the question is settled elsewhere (another session's answer, a cancel).
  const settled = new AbortController();
  const onRequestAbort = () => settled.abort();
  extra.signal.addEventListener('abort', onRequestAbort, { once: true });
  const watching = (async () => {
    while (!settled.signal.aborted && store.pendingInput(taskId)?.seq === pending.seq) await store.nextChange(taskId, 1000, settled.signal);
    settled.abort();
  })();
  try {
    const params = { ...pending.params, _meta: { ...pending.params._meta, [RELATED_TASK_META_KEY]: { taskId } } };
    const answer = await extra.sendRequest({ method: 'elicitation/create', params }, ElicitResultSchema, {
      signal: settled.signal,
      timeout: inputTimeoutMs,
    });
    store.answer(taskId, pending.seq, { action: answer.action, ...(answer.content !== undefined ? { content: answer.content } : {}) });
  } catch {
    // No answer on this stream (it went away, the client failed, or the question was settled): it stays pending.
  } finally {
    extra.signal.removeEventListener('abort', onRequestAbort);
    settled.abort();
    await watching;
  }
}
