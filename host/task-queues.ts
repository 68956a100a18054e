/**
 * The host-wide part of a running task that is not its state: the notifications it queued for
 * the next `tasks/result` (in any session), the run waiting for the answer to its question, and
 * the waiters for its next change. Memory only: all of it is gone with the process, as the run is.
 */
import { RELATED_TASK_META_KEY, type JSONRPCNotification } from '@modelcontextprotocol/sdk/types.js';
import type { AskAnswer } from './engines/engine';

export class TaskQueues {
  private readonly queues = new Map<string, JSONRPCNotification[]>();
  private readonly listeners = new Map<string, Set<() => void>>();
  private readonly waiting = new Map<string, { seq: number; resolve(answer: AskAnswer): void }>();

  /** How many notifications wait for a reader. */
  length(taskId: string): number {
    return this.queues.get(taskId)?.length ?? 0;
  }

  /** Queues a notification with the related-task meta, and wakes the task's waiters. */
  push(taskId: string, notification: { method: string; params?: Record<string, unknown> }): void {
    let queue = this.queues.get(taskId);
    if (!queue) this.queues.set(taskId, (queue = []));
    const params = notification.params ?? {};
    const meta = (params._meta ?? {}) as Record<string, unknown>;
    queue.push({
      jsonrpc: '2.0',
      method: notification.method,
      params: { ...params, _meta: { ...meta, [RELATED_TASK_META_KEY]: { taskId } } },
    });
    this.changed(taskId);
  }

  /** The first queued notification, left in the queue until shift() (so a failed send loses nothing). */
  peek(taskId: string): JSONRPCNotification | undefined {
    return this.queues.get(taskId)?.[0];
  }

  /** Drops the first notification; a run waiting for room goes on. */
  shift(taskId: string): void {
    const queue = this.queues.get(taskId);
    queue?.shift();
    if (queue && !queue.length) this.queues.delete(taskId);
    this.changed(taskId);
  }

  /** Forgets what the task queued (it ended or was deleted). */
  drop(taskId: string): void {
    this.queues.delete(taskId);
  }

  /** Wakes whoever waits on the task's next change. */
  changed(taskId: string): void {
    const listeners = this.listeners.get(taskId);
    if (!listeners) return;
    for (const listener of [...listeners]) listener();
  }

  /** Resolves at the task's next changed(), or after `maxMs`, or when `signal` aborts. */
  nextChange(taskId: string, maxMs: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      let listeners = this.listeners.get(taskId);
      if (!listeners) this.listeners.set(taskId, (listeners = new Set()));
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        listeners.delete(done);
        if (!listeners.size && this.listeners.get(taskId) === listeners) this.listeners.delete(taskId);
        resolve();
      };
      const timer = setTimeout(done, maxMs);
      listeners.add(done);
      if (signal?.aborted) done();
      else signal?.addEventListener('abort', done, { once: true });
    });
  }

  /**
   * The run's wait for the answer to question `seq` of the task. `expire` is called with a
   * `cancel` answer when `expireAfterMs` passes or `signal` aborts first.
   */
  awaitAnswer(
    taskId: string,
    seq: number,
    options: { expireAfterMs?: number; signal?: AbortSignal },
    expire: (answer: AskAnswer) => void,
  ): Promise<AskAnswer> {
    const { expireAfterMs, signal } = options;
    return new Promise<AskAnswer>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      if (expireAfterMs !== undefined && Number.isFinite(expireAfterMs)) {
        timer = setTimeout(() => expire({ action: 'cancel', reason: `no answer within ${expireAfterMs} ms` }), expireAfterMs);
        timer.unref();
      }
      const onAbort = () => expire({ action: 'cancel', reason: 'the run was stopped' });
      this.waiting.set(taskId, {
        seq,
        resolve: (answer) => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          resolve(answer);
        },
      });
      if (signal?.aborted) onAbort();
      else signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Hands the answer to the run waiting on question `seq` (on any question when undefined); false when none does. */
  settle(taskId: string, answer: AskAnswer, seq?: number): boolean {
    const waiting = this.waiting.get(taskId);
    if (!waiting || (seq !== undefined && waiting.seq !== seq)) return false;
    this.waiting.delete(taskId);
    waiting.resolve(answer);
    return true;
  }
}
