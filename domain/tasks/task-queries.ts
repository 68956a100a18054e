import type { EntityManager } from '@mikro-orm/postgresql';
import { Execution, type Task } from '../../entities';

/** How a task's runs stand, counted in one grouped query for a whole page of tasks. */
export interface TaskRunCounts {
  skipped: number;
  failed: number;
  live: number;
}

/** A task with no runs: a new one. */
export const NO_RUNS: TaskRunCounts = Object.freeze({ skipped: 0, failed: 0, live: 0 });

export async function runCounts(em: EntityManager, taskIds: string[]): Promise<Map<string, TaskRunCounts>> {
  const counts = new Map<string, TaskRunCounts>();
  if (taskIds.length === 0) return counts;
  const rows = await em.execute<{ task_id: string; skipped: number; failed: number; live: number }[]>(
    `select task_id,
       count(*) filter (where status = 'SKIPPED')::int as skipped,
       count(*) filter (where status in ('FAILED', 'TIMED_OUT'))::int as failed,
       count(*) filter (where status in ('QUEUED', 'RUNNING', 'WAITING_INPUT'))::int as live
     from executions where task_id in (${taskIds.map(() => '?').join(', ')}) group by task_id`,
    taskIds,
  );
  for (const row of rows) counts.set(row.task_id, { skipped: row.skipped, failed: row.failed, live: row.live });
  return counts;
}

export function countsOf(counts: Map<string, TaskRunCounts>, taskId: string): TaskRunCounts {
  return counts.get(taskId) ?? NO_RUNS;
}

/** The task's most recent run, skipped ones included. */
export function lastRun(em: EntityManager, task: Task): Promise<Execution | null> {
  return em.findOne(Execution, { task }, { orderBy: { createdAt: 'desc', id: 'desc' } });
}
