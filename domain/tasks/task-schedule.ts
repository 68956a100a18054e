import { ExecutionMode, type Task } from '../../entities';
import { deleteTaskSchedule, taskScheduleNextTimes, upsertTaskSchedule, type TemporalAccess } from '../temporal';
import { nextCronTimes, ScheduleSpecError, temporalCron } from './schedule-spec';

/**
 * A task's Temporal Schedule `task-<taskId>`: RECURRING tasks fire on their cron in their zone;
 * SCHEDULED tasks fire once, from a schedule whose one calendar time is `scheduledAt` (so a
 * one-off survives restarts of the API, the worker and Temporal, pauses with the task, and is
 * described like a recurring one). IMMEDIATE tasks have none. The schedule is paused while the
 * task is disabled.
 */

/** How late an action missed while Temporal was down may still start. */
export const CATCHUP_WINDOW_MS = { recurring: 5 * 60_000, oneOff: 24 * 3600_000 };

export function hasSchedule(task: Pick<Task, 'executionMode'>): boolean {
  return task.executionMode !== ExecutionMode.IMMEDIATE;
}

/** The whole second a one-off fires at: `scheduledAt` rounded up (a schedule's calendar has no milliseconds). */
export function oneOffInstant(scheduledAt: Date): Date {
  return new Date(Math.ceil(scheduledAt.getTime() / 1000) * 1000);
}

/** `at` as a 7-field Temporal cron (second … year) in UTC: exactly one match. */
function oneOffCron(scheduledAt: Date): string {
  const at = oneOffInstant(scheduledAt);
  return `${at.getUTCSeconds()} ${at.getUTCMinutes()} ${at.getUTCHours()} ${at.getUTCDate()} ${at.getUTCMonth() + 1} * ${at.getUTCFullYear()}`;
}

/** Brings the task's schedule in step with the task: created, updated, paused, or removed. */
export async function syncTaskSchedule(temporal: TemporalAccess, task: Task): Promise<void> {
  if (!hasSchedule(task) || task.deletedAt) return deleteTaskSchedule(temporal, task.id);
  const oneOff = task.executionMode === ExecutionMode.SCHEDULED;
  await upsertTaskSchedule(temporal, {
    taskId: task.id,
    organizationId: task.organization.id,
    agentId: task.agent?.id,
    cron: oneOff ? oneOffCron(task.scheduledAt!) : temporalCron(task.cronExpression!),
    timezone: oneOff ? 'UTC' : task.timezone,
    ...(oneOff ? { endAt: new Date(task.scheduledAt!.getTime() + 1000) } : {}),
    paused: !task.enabled,
    catchupWindowMs: oneOff ? CATCHUP_WINDOW_MS.oneOff : CATCHUP_WINDOW_MS.recurring,
    note: `${task.title} (${task.enabled ? 'enabled' : 'disabled'})`,
  });
}

/**
 * Upcoming times per (expression, zone), reused while the first of them is still ahead: they
 * cannot change before it passes, and a list of tasks mostly repeats a few expressions
 * (computing five times costs about 0.4 ms).
 */
const upcoming = new Map<string, Date[]>();
const UPCOMING_MAX = 1000;

function cachedCronTimes(expression: string, timezone: string, count: number, from: Date): Date[] {
  const key = `${timezone} ${expression}`;
  const cached = upcoming.get(key);
  if (cached && cached.length >= count && cached[0]! > from) return cached.slice(0, count);
  const times = nextCronTimes(expression, timezone, Math.max(count, 5), from);
  if (upcoming.size >= UPCOMING_MAX) upcoming.clear();
  upcoming.set(key, times);
  return times.slice(0, count);
}

/** The next `count` occurrences computed here (lists, previews, `nextRunAt`), agreeing with Temporal's. */
export function computedRunTimes(task: Task, count = 5, from = new Date()): Date[] {
  if (!task.enabled || task.deletedAt) return [];
  if (task.executionMode === ExecutionMode.SCHEDULED)
    return task.scheduledAt && task.scheduledAt > from ? [oneOffInstant(task.scheduledAt)] : [];
  if (task.executionMode !== ExecutionMode.RECURRING || !task.cronExpression) return [];
  try {
    return cachedCronTimes(task.cronExpression, task.timezone, count, from);
  } catch (error) {
    // A stored expression was valid when saved; a list must not fail over one that no longer parses.
    if (error instanceof ScheduleSpecError) return [];
    throw error;
  }
}

/**
 * The times the task's schedule (as it is now) fires in (from, to], oldest first, at most
 * `limit`: what a paused schedule missed.
 */
export function runTimesBetween(task: Task, from: Date, to: Date, limit: number): Date[] {
  if (task.executionMode === ExecutionMode.SCHEDULED) {
    const at = task.scheduledAt ? oneOffInstant(task.scheduledAt) : undefined;
    return at && at > from && at <= to ? [at] : [];
  }
  if (task.executionMode !== ExecutionMode.RECURRING || !task.cronExpression) return [];
  const times: Date[] = [];
  for (let cursor = from; times.length < limit;) {
    let batch: Date[];
    try {
      batch = nextCronTimes(task.cronExpression, task.timezone, 100, cursor);
    } catch (error) {
      if (error instanceof ScheduleSpecError) return times;
      throw error;
    }
    for (const at of batch) {
      if (at > to || times.length >= limit) return times;
      times.push(at);
    }
    cursor = batch[batch.length - 1]!;
  }
  return times;
}

export function nextRunAt(task: Task, from = new Date()): Date | null {
  return computedRunTimes(task, 1, from)[0] ?? null;
}

/** The next 5 occurrences from the schedule's own description; the local computation if Temporal cannot answer. */
export async function scheduleRunTimes(temporal: TemporalAccess, task: Task): Promise<Date[]> {
  if (!hasSchedule(task) || !task.enabled) return [];
  const described = await taskScheduleNextTimes(temporal, task.id).catch(() => undefined);
  return described ? described.slice(0, 5) : computedRunTimes(task);
}
