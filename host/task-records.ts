/**
 * The reference host's tasks in memory (host/task-store.ts keeps them here): by task id and, for
 * task-mode runs, by (tool, executionId), the dedupe key. A task past its expiresAt is gone: it
 * is dropped at the first look, and a sweep looks at every task now and then, so that tasks
 * nobody asks about again do not stay for the host's lifetime.
 */
import type { TaskFile } from './task-files';

const SWEEP_EVERY_MS = 60_000;

/** A task as the store keeps it: what its file holds (expiresAt: terminal tasks only, null never), and more. */
export interface TaskRecord extends TaskFile {
  /** Created by a plain call: not persisted, listed or deduplicated. */
  ephemeral: boolean;
  /** The run has been started for it (createTask may return a task already running). */
  started: boolean;
}

export class TaskRecords {
  private readonly records = new Map<string, TaskRecord>();
  /** `${tool}\n${executionId}` of task-mode runs → taskId. */
  private readonly byExecution = new Map<string, string>();
  private sweeper?: NodeJS.Timeout;

  /** `deleted`: told of each task dropped (expired, or an ephemeral one whose result was read). */
  constructor(private readonly deleted: (record: TaskRecord) => void) {}

  /** Adds a task; one that is not ephemeral and has an executionId becomes its run's task. */
  add(record: TaskRecord): void {
    this.records.set(record.task.taskId, record);
    if (!record.ephemeral && record.executionId !== undefined)
      this.byExecution.set(executionKey(record.tool, record.executionId), record.task.taskId);
  }

  /** The record of a task, expired or not. */
  get(taskId: string): TaskRecord | undefined {
    return this.records.get(taskId);
  }

  /** Every record, expired or not, in the order they were added. */
  all(): TaskRecord[] {
    return [...this.records.values()];
  }

  /** The record of a task that has not expired (an expired one is dropped on the way). */
  live(taskId: string | undefined): TaskRecord | undefined {
    if (taskId === undefined) return undefined;
    const record = this.records.get(taskId);
    if (!record) return undefined;
    if (record.expiresAt !== null && record.expiresAt <= Date.now()) {
      this.delete(taskId);
      return undefined;
    }
    return record;
  }

  /** The live task of a task-mode run of `tool` for `executionId`, if there is one. */
  ofExecution(tool: string, executionId: string): TaskRecord | undefined {
    return this.live(this.byExecution.get(executionKey(tool, executionId)));
  }

  delete(taskId: string): void {
    const record = this.records.get(taskId);
    if (!record) return;
    this.records.delete(taskId);
    if (record.executionId !== undefined && this.byExecution.get(executionKey(record.tool, record.executionId)) === taskId) {
      this.byExecution.delete(executionKey(record.tool, record.executionId));
    }
    this.deleted(record);
  }

  /** Drops the expired tasks every minute from now on, until stopSweeping(). */
  startSweeping(): void {
    this.sweeper = setInterval(() => void this.sweep(), SWEEP_EVERY_MS);
    this.sweeper.unref();
  }

  stopSweeping(): void {
    clearInterval(this.sweeper);
  }

  private async sweep(): Promise<void> {
    for (const taskId of [...this.records.keys()]) this.live(taskId);
  }
}

function executionKey(tool: string, executionId: string): string {
  return `${tool}\n${executionId}`;
}
