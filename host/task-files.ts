/**
 * The files of a host's tasks (HostTaskStore with a data dir): one JSON file per task, written
 * tmp + rename so that a crash mid-write leaves the task's previous state, never half a file.
 * The writes of one task run one after the other, in the order of its changes.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ElicitRequestFormParams, Result, Task } from '@modelcontextprotocol/sdk/types.js';

/** An input request a task waits on: sent as elicitation/create on every `tasks/result` until answered. */
export interface PendingInput {
  seq: number;
  params: ElicitRequestFormParams;
}

/** The file of one task: what a restarted host needs to answer for it. */
export interface TaskFile {
  task: Task;
  tool: string;
  executionId?: string;
  result?: Result;
  pendingInput?: PendingInput;
  expiresAt: number | null;
}

export class TaskFiles {
  private readonly writes = new Map<string, Promise<void>>();

  constructor(private readonly dir: string) {}

  /** The tasks saved by a previous run of the host; leftovers of a crash mid-write are removed. */
  async load(): Promise<TaskFile[]> {
    await mkdir(this.dir, { recursive: true });
    const saved: TaskFile[] = [];
    for (const name of await readdir(this.dir)) {
      const file = path.join(this.dir, name);
      if (!name.endsWith('.json')) {
        // A tmp file a crash left behind mid-write; the task's previous file is intact.
        if (name.endsWith('.tmp')) await rm(file, { force: true });
        continue;
      }
      try {
        saved.push(JSON.parse(await readFile(file, 'utf8')) as TaskFile);
      } catch {
        await rm(file, { force: true });
      }
    }
    return saved;
  }

  save(saved: TaskFile): void {
    const text = JSON.stringify(saved);
    const file = this.fileOf(saved.task.taskId);
    this.write(saved.task.taskId, async () => {
      const tmp = `${file}.${randomUUID()}.tmp`;
      await writeFile(tmp, text);
      await rename(tmp, file);
    });
  }

  remove(taskId: string): void {
    this.write(taskId, () => rm(this.fileOf(taskId), { force: true }));
  }

  /** Settles once the writes of this task started so far are done. */
  async written(taskId: string): Promise<void> {
    await this.writes.get(taskId);
  }

  /** Settles once every write started so far is done. */
  async flush(): Promise<void> {
    await Promise.allSettled([...this.writes.values()]);
  }

  private write(taskId: string, work: () => Promise<void>): void {
    const previous = this.writes.get(taskId) ?? Promise.resolve();
    const next = previous.then(work).catch((error: unknown) => {
      process.stderr.write(`agent host: could not write task ${taskId}: ${error instanceof Error ? error.message : String(error)}\n`);
    });
    this.writes.set(taskId, next);
    void next.then(() => {
      if (this.writes.get(taskId) === next) this.writes.delete(taskId);
    });
  }

  private fileOf(taskId: string): string {
    // taskIds are the host's own UUIDs; a file name is never built from a client's text.
    return path.join(this.dir, `${taskId}.json`);
  }
}
