/**
 * The reference host's MCP tasks (docs/host-protocol.md, "Tasks"): one store per host, shared
 * by every session, behind the SDK's TaskStore interface. It differs from the SDK's
 * InMemoryTaskStore where mcp-fleet needs it to:
 *
 * - sessionId is ignored: a client that reconnects (a new session, same bearer token) must
 *   find its task again, or re-attaching after a dropped stream or a worker restart is impossible;
 * - one task per (tool, executionId): a repeated task-augmented `tools/call` with the same
 *   executionId returns the task already there instead of starting the run again;
 * - every terminal state has a result (a cancelled task too), so `tasks/result` never errors
 *   on a task it lists;
 * - with a data dir, tasks outlive the process: one JSON file per task. A task still running
 *   when the host went away is reported `failed` with RESTART_LOST, never `completed`;
 * - `tasks/cancel` (which in the SDK only changes the status) aborts the run: cancelled()
 *   listeners fire;
 * - the pending input request of a task waiting for an answer; the notifications a running
 *   task sends wait in its TaskQueues (task-queues.ts) for the next `tasks/result`;
 * - tasks expire: TaskRecords (task-records.ts) drops a task past its TTL, at a look or a sweep.
 *
 * Tasks a plain (not task-augmented) call creates, because an `optional` tool always goes
 * through createTask in the SDK, are "ephemeral": memory only, not listed, not deduplicated,
 * dropped once their result has been read.
 */
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import type { CreateTaskOptions, TaskStore } from '@modelcontextprotocol/sdk/experimental/tasks/interfaces.js';
import { isTerminal } from '@modelcontextprotocol/sdk/experimental/tasks/interfaces.js';
import {
  ErrorCode,
  McpError,
  type CallToolResult,
  type ElicitRequestFormParams,
  type JSONRPCNotification,
  type Request,
  type RequestId,
  type Result,
  type Task,
} from '@modelcontextprotocol/sdk/types.js';
import type { AskAnswer } from './engines/engine';
import { TaskFiles, type PendingInput, type TaskFile } from './task-files';

export type { PendingInput } from './task-files';
import { TaskQueues } from './task-queues';
import { TaskRecords, type TaskRecord } from './task-records';

/** What a task the host lost reports: its work is gone, and nobody may take it for done. */
export const RESTART_LOST = 'the agent host restarted while this run was in progress; its work was lost';

/** Kept when the client asks for no TTL (or for none at all). */
export const DEFAULT_TASK_TTL_MS = 24 * 60 * 60_000;
/** No task is kept longer, whatever the client asks. */
export const MAX_TASK_TTL_MS = 7 * 24 * 60 * 60_000;
/** A plain call's task only carries its result back to the same call. */
const EPHEMERAL_TTL_MS = 60_000;
/** Above this many queued notifications a run waits for `tasks/result` to take some. */
export const MAX_QUEUED = 1000;

export type TaskStatus = Task['status'];

/** An answer, with why it was made by the host rather than the client when it was. */
export type InputAnswer = AskAnswer;

export interface TaskStoreOptions {
  /** Where tasks are kept across restarts (`<dataDir>/tasks/<taskId>.json`); none: memory only. */
  dataDir?: string;
  /** Suggested to clients between two tasks/get. */
  pollIntervalMs?: number;
}

export class HostTaskStore implements TaskStore {
  private readonly records = new TaskRecords((record) => {
    this.queues.drop(record.task.taskId);
    if (!record.ephemeral && !this.frozen) this.files?.remove(record.task.taskId);
  });
  private readonly queues = new TaskQueues();
  private readonly cancelListeners = new Set<(taskId: string) => void>();
  private readonly files?: TaskFiles;
  private readonly pollIntervalMs: number;
  private inputSeq = 0;
  /** Set at close(): what happens in memory afterwards (runs ending on shutdown) is not written. */
  private frozen = false;

  constructor(options: TaskStoreOptions = {}) {
    this.files = options.dataDir === undefined ? undefined : new TaskFiles(path.join(options.dataDir, 'tasks'));
    this.pollIntervalMs = options.pollIntervalMs ?? 100;
  }

  /**
   * Loads the tasks of a previous run of the host. A task that was not terminal lost its run
   * with the process: it becomes failed with RESTART_LOST. Expired files are deleted.
   */
  async open(): Promise<void> {
    if (this.files) {
      const now = Date.now();
      for (const saved of await this.files.load()) {
        const record: TaskRecord = { ...saved, ephemeral: false, started: true };
        if (!isTerminal(record.task.status)) {
          this.finish(record, 'failed', lostResult(), RESTART_LOST);
          delete record.pendingInput;
        }
        if (record.expiresAt !== null && record.expiresAt <= now) {
          this.files.remove(record.task.taskId);
          continue;
        }
        this.records.add(record);
        this.persist(record);
      }
      await this.flush();
    }
    this.records.startSweeping();
  }

  /** Stops writing and sweeping; waits for the writes already started. */
  async close(): Promise<void> {
    this.frozen = true;
    this.records.stopSweeping();
    await this.flush();
  }

  // -------------------------------------------------------------------------------------------
  // TaskStore (sessionId ignored throughout: see the file comment)
  // -------------------------------------------------------------------------------------------

  async createTask(params: CreateTaskOptions, _requestId: RequestId, request: Request, _sessionId?: string): Promise<Task> {
    const callParams = (request.params ?? {}) as { name?: unknown; arguments?: Record<string, unknown>; task?: unknown };
    const ephemeral = callParams.task === undefined;
    const tool = typeof callParams.name === 'string' ? callParams.name : request.method;
    const executionId = typeof callParams.arguments?.executionId === 'string' ? callParams.arguments.executionId : undefined;
    if (!ephemeral && executionId !== undefined) {
      const existing = this.records.ofExecution(tool, executionId);
      if (existing) return { ...existing.task };
    }
    const now = new Date().toISOString();
    // null asks for no expiry at all: the cap is as far as the host goes.
    const ttl = params.ttl === null ? MAX_TASK_TTL_MS : Math.min(params.ttl ?? DEFAULT_TASK_TTL_MS, MAX_TASK_TTL_MS);
    const task: Task = {
      taskId: randomUUID(),
      status: 'working',
      ttl: ephemeral ? EPHEMERAL_TTL_MS : ttl,
      createdAt: now,
      lastUpdatedAt: now,
      pollInterval: params.pollInterval ?? this.pollIntervalMs,
    };
    const record: TaskRecord = {
      task,
      tool,
      ...(executionId !== undefined ? { executionId } : {}),
      expiresAt: null,
      ephemeral,
      started: false,
    };
    this.records.add(record);
    this.persist(record);
    // On disk before the client hears of it: a task it was told about survives a crash (as failed, if it was running).
    await this.written(task.taskId);
    return { ...task };
  }

  async getTask(taskId: string, _sessionId?: string): Promise<Task | null> {
    const record = this.live(taskId);
    return record ? { ...record.task } : null;
  }

  async storeTaskResult(taskId: string, status: 'completed' | 'failed', result: Result, _sessionId?: string): Promise<void> {
    const record = this.live(taskId);
    if (!record) throw new McpError(ErrorCode.InvalidParams, `Task not found: ${taskId}`);
    // A cancelled task keeps its cancellation: the run's own end comes after it.
    if (isTerminal(record.task.status)) return;
    this.finish(record, status, result);
    this.changed(record);
    await this.written(taskId);
  }

  async getTaskResult(taskId: string, _sessionId?: string): Promise<Result> {
    const record = this.live(taskId);
    if (!record) throw new McpError(ErrorCode.InvalidParams, `Task not found: ${taskId}`);
    if (!record.result) throw new McpError(ErrorCode.InvalidParams, `Task ${taskId} has no result yet (status ${record.task.status})`);
    if (record.ephemeral) this.records.delete(taskId);
    return record.result;
  }

  async updateTaskStatus(taskId: string, status: TaskStatus, statusMessage?: string, _sessionId?: string): Promise<void> {
    const record = this.live(taskId);
    if (!record) throw new McpError(ErrorCode.InvalidParams, `Task not found: ${taskId}`);
    if (isTerminal(record.task.status)) return;
    if (status === 'cancelled') {
      const text = statusMessage ?? 'cancelled';
      delete record.pendingInput;
      this.finish(record, 'cancelled', { isError: true, content: [{ type: 'text', text }] } satisfies CallToolResult, text);
      this.queues.drop(taskId);
      this.answerWaiting(record, { action: 'cancel', reason: 'the task was cancelled' });
      this.changed(record);
      for (const listener of [...this.cancelListeners]) listener(taskId);
      return;
    }
    if (status === 'completed' || status === 'failed') {
      const text = statusMessage ?? status;
      this.finish(
        record,
        status,
        { isError: status === 'failed', content: [{ type: 'text', text }] } satisfies CallToolResult,
        statusMessage,
      );
    } else {
      record.task = {
        ...record.task,
        status,
        lastUpdatedAt: new Date().toISOString(),
        ...(statusMessage !== undefined ? { statusMessage } : {}),
      };
    }
    this.changed(record);
  }

  async listTasks(cursor?: string, _sessionId?: string): Promise<{ tasks: Task[]; nextCursor?: string }> {
    const all = this.records.all().filter((r) => !r.ephemeral && this.live(r.task.taskId));
    const start = cursor === undefined ? 0 : Number(cursor);
    if (!Number.isInteger(start) || start < 0) throw new Error(`invalid cursor ${cursor}`);
    const page = all.slice(start, start + 100).map((r) => ({ ...r.task }));
    return { tasks: page, ...(start + 100 < all.length ? { nextCursor: String(start + 100) } : {}) };
  }

  // -------------------------------------------------------------------------------------------
  // What the host adds
  // -------------------------------------------------------------------------------------------

  /** Whether the task was created by a plain call (its run is the call itself). */
  isEphemeral(taskId: string): boolean {
    return this.records.get(taskId)?.ephemeral ?? false;
  }

  /** True once per task: the caller starts its run. False for a task returned again by the dedupe. */
  claimRun(taskId: string): boolean {
    const record = this.live(taskId);
    if (!record || record.started || isTerminal(record.task.status)) return false;
    record.started = true;
    return true;
  }

  /** Called with the taskId whenever a task is cancelled (tasks/cancel). */
  onCancelled(listener: (taskId: string) => void): () => void {
    this.cancelListeners.add(listener);
    return () => this.cancelListeners.delete(listener);
  }

  /**
   * Queues a notification of a running task for the next `tasks/result`, with the related-task
   * meta. Waits while the queue is full, so that a slow reader slows the run down instead of
   * losing its events, unless `stop` has aborted.
   */
  async enqueue(taskId: string, notification: { method: string; params?: Record<string, unknown> }, stop?: AbortSignal): Promise<void> {
    // A run being stopped (cancel, a limit, shutdown) is not held back: its last events go over the cap.
    while (this.queues.length(taskId) >= MAX_QUEUED && !stop?.aborted && this.live(taskId) && !this.terminal(taskId)) {
      await this.queues.nextChange(taskId, 1000, stop);
    }
    const record = this.live(taskId);
    if (!record || isTerminal(record.task.status)) return;
    this.queues.push(taskId, notification);
  }

  /** The first queued notification, left in the queue until shift() (so a failed send loses nothing). */
  peek(taskId: string): JSONRPCNotification | undefined {
    return this.queues.peek(taskId);
  }

  shift(taskId: string): void {
    this.queues.shift(taskId);
  }

  /**
   * Asks the client a question for a task: the task is input_required, the question pending
   * until an answer() for it (or the task ends: cancel). `expireAfterMs` answers `cancel` with
   * a reason when nobody answers in time.
   */
  ask(
    taskId: string,
    params: ElicitRequestFormParams,
    options: { expireAfterMs?: number; signal?: AbortSignal } = {},
  ): Promise<InputAnswer> {
    const record = this.live(taskId);
    if (!record || isTerminal(record.task.status)) return Promise.resolve({ action: 'cancel', reason: 'the task has ended' });
    const seq = ++this.inputSeq;
    record.pendingInput = { seq, params };
    // tasks/get shows what the task waits for.
    record.task = { ...record.task, status: 'input_required', statusMessage: params.message, lastUpdatedAt: new Date().toISOString() };
    this.persist(record);
    this.changed(record);
    return this.queues.awaitAnswer(taskId, seq, options, (expired) => this.answer(taskId, seq, expired));
  }

  /** The question a task waits on, if it waits on one. */
  pendingInput(taskId: string): PendingInput | undefined {
    return this.live(taskId)?.pendingInput;
  }

  /** Delivers the answer to question `seq`; false when it is no longer pending (answered already, or the task ended). */
  answer(taskId: string, seq: number, answer: InputAnswer): boolean {
    const record = this.live(taskId);
    if (!record || record.pendingInput?.seq !== seq) return false;
    delete record.pendingInput;
    if (!isTerminal(record.task.status)) {
      const { statusMessage: _question, ...task } = record.task;
      record.task = { ...task, status: 'working', lastUpdatedAt: new Date().toISOString() };
    }
    this.persist(record);
    this.answerWaiting(record, answer, seq);
    this.changed(record);
    return true;
  }

  /** Resolves at the task's next change (status, result, queue, input), or after `maxMs`, or when `signal` aborts. */
  nextChange(taskId: string, maxMs: number, signal?: AbortSignal): Promise<void> {
    return this.queues.nextChange(taskId, maxMs, signal);
  }

  /** Settles once the writes of this task started so far are done. */
  private async written(taskId: string): Promise<void> {
    await this.files?.written(taskId);
  }

  /** Settles once every file write started so far is done. */
  async flush(): Promise<void> {
    await this.files?.flush();
  }

  // -------------------------------------------------------------------------------------------

  private terminal(taskId: string): boolean {
    const record = this.records.get(taskId);
    return record ? isTerminal(record.task.status) : true;
  }

  /** The record of a task that has not expired (an expired one is dropped on the way). */
  private live(taskId: string | undefined): TaskRecord | undefined {
    return this.records.live(taskId);
  }

  private finish(record: TaskRecord, status: 'completed' | 'failed' | 'cancelled', result: Result, statusMessage?: string): void {
    const now = Date.now();
    record.task = {
      ...record.task,
      status,
      lastUpdatedAt: new Date(now).toISOString(),
      ...(statusMessage !== undefined ? { statusMessage } : {}),
    };
    record.result = result;
    // Like InMemoryTaskStore: a finished task is kept for its TTL from the moment it finished.
    record.expiresAt = record.task.ttl === null ? null : now + record.task.ttl;
    this.persist(record);
  }

  private answerWaiting(record: TaskRecord, answer: InputAnswer, seq?: number): void {
    if (this.queues.settle(record.task.taskId, answer, seq) && seq === undefined) delete record.pendingInput;
  }

  private changed(record: TaskRecord): void {
    this.queues.changed(record.task.taskId);
  }

  private persist(record: TaskRecord): void {
    if (record.ephemeral || !this.files || this.frozen) return;
    const { ephemeral: _ephemeral, started: _started, ...saved } = record;
    this.files.save(saved satisfies TaskFile);
  }
}

function lostResult(): CallToolResult {
  return { isError: true, content: [{ type: 'text', text: RESTART_LOST }] };
}
