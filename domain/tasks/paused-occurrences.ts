import type { EntityManager } from '@mikro-orm/postgresql';
import { Execution, ExecutionStatus, ExecutionTrigger, type Task } from '../../entities';
import type { Actor } from '../actor';
import { recordExecution } from '../runs/start-execution';
import { announce, runContent } from './occurrences';
import { runTimesBetween } from './task-schedule';

/** At most this many occurrences missed while a task was paused become rows (the latest ones). */
export const PAUSED_RECORD_LIMIT = 50;
/** Missed occurrences are counted up to this many. */
const PAUSED_COUNT_LIMIT = 10_000;

/**
 * On resume: the occurrences the task's schedule (as it is now) would have started between
 * `pausedAt` and `resumedAt` are recorded SKIPPED with "skipped: the task was paused", their
 * scheduled time and a `task:occurrence` event, so the history shows the gap. One Temporal
 * started anyway, as the pause was being saved, already has its row and is not repeated.
 * Answers how many were missed.
 */
export async function recordPausedOccurrences(
  tx: EntityManager,
  actor: Actor,
  task: Task,
  pausedAt: Date,
  resumedAt: Date,
): Promise<number> {
  const times = runTimesBetween(task, pausedAt, resumedAt, PAUSED_COUNT_LIMIT);
  if (!times.length) return 0;
  const recorded = await tx.find(
    Execution,
    { task: task.id, scheduledFor: { $gte: times[0]!, $lte: times[times.length - 1]! } },
    { fields: ['scheduledFor'] },
  );
  const known = new Set(recorded.map((e) => e.scheduledFor?.getTime()));
  const missed = times.filter((at) => !known.has(at.getTime()));
  const listed = missed.slice(-PAUSED_RECORD_LIMIT);
  const earlier = missed.length - listed.length;
  for (const [i, at] of listed.entries()) {
    const more =
      i === 0 && earlier > 0
        ? ` (after ${earlier}${times.length >= PAUSED_COUNT_LIMIT ? ' or more' : ''} earlier missed occurrences, not listed)`
        : '';
    const reason = `skipped: the task was paused${more}`;
    const execution = await recordExecution(tx, actor, {
      taskId: task.id,
      trigger: ExecutionTrigger.SCHEDULE,
      scheduledFor: at,
      ...runContent(task),
      status: ExecutionStatus.SKIPPED,
      error: reason,
    });
    await announce(tx, task, execution, reason);
  }
  return missed.length;
}
