import type { EntityManager } from '@mikro-orm/postgresql';
import { ExecutionMode, Task } from '../../entities';
import type { TaskLimits } from '../../lib/config';
import { fieldError } from '../errors';

/**
 * The cap on an organisation's enabled RECURRING tasks (config `tasks`, TASK_MAX_RECURRING).
 * Checked twice, like a unique name: once before the schedule is saved, for the friendly
 * answer, and once after, under a lock per organisation held until commit, so that two saves
 * at once count each other (a count alone would see neither). Only the second holds the lock,
 * and only for its count and the commit: saves of one organisation do not wait on each other's
 * Temporal calls.
 */

export type { TaskLimits };

/** The task takes a place under the cap: enabled, RECURRING, not deleted. */
export function countsAsRecurring(task: Pick<Task, 'executionMode' | 'enabled' | 'deletedAt'>): boolean {
  return task.executionMode === ExecutionMode.RECURRING && task.enabled && !task.deletedAt;
}

async function otherRecurring(tx: EntityManager, task: Task): Promise<number> {
  return tx.count(Task, {
    organization: task.organization.id,
    executionMode: ExecutionMode.RECURRING,
    enabled: true,
    deletedAt: null,
    id: { $ne: task.id },
  });
}

function overCap(path: string, count: number, max: number) {
  return fieldError(
    path,
    `your organisation already has ${count} enabled recurring tasks, the most it may have (TASK_MAX_RECURRING = ${max}); disable or delete one first`,
    'recurring_task_limit',
  );
}

/** The friendly check, before anything is saved: 400 `recurring_task_limit` on `path`. */
export async function assertRecurringRoom(tx: EntityManager, task: Task, limits: TaskLimits, path: string): Promise<void> {
  const count = await otherRecurring(tx, task);
  if (count >= limits.maxRecurringPerOrganization) throw overCap(path, count, limits.maxRecurringPerOrganization);
}

/**
 * The race-safe check, last in the transaction, after the schedule was saved: on a 400 the
 * transaction rolls back, and `undo` first puts the schedule back as it was.
 */
export async function assertRecurringRoomLocked(
  tx: EntityManager,
  task: Task,
  limits: TaskLimits,
  path: string,
  undo: () => Promise<void>,
): Promise<void> {
  await tx.execute('select pg_advisory_xact_lock(hashtextextended(?, 0))', [`recurring-tasks-of:${task.organization.id}`]);
  const count = await otherRecurring(tx, task);
  if (count < limits.maxRecurringPerOrganization) return;
  await undo();
  throw overCap(path, count, limits.maxRecurringPerOrganization);
}
