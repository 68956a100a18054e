import { randomUUID } from 'node:crypto';
import type { EntityManager } from '@mikro-orm/postgresql';
import {
  Execution,
  ExecutionStatus,
  LIVE_EXECUTION_STATUSES,
  Organization,
  SLOT_HOLDING_STATUSES,
  Task,
  User,
  type Agent,
} from '../../entities';
import type { Actor } from '../actor';
import { audit } from '../audit';
import { AppError } from '../errors';
import { WorkflowNotFoundError } from '@temporalio/client';
import { cancelExecution, publishCancels, runOwner } from '../runs/cancel';
import type { RunDeps } from '../runs/run-deps';
import { deleteTaskSchedule, openTaskRuns, startTaskRun, stopWorkflow, type TemporalAccess } from '../temporal';
import { assertRunnableTask } from './task-rules';
import { hasSchedule, nextRunAt, syncTaskSchedule } from './task-schedule';
import { assertRecurringRoom, assertRecurringRoomLocked, countsAsRecurring, type TaskLimits } from './task-limits';
import { beginOccurrence, endOccurrence } from './occurrences';
import { recordPausedOccurrences } from './paused-occurrences';
import { taskRunWorkflowId } from '../../workflows/contracts/task-run';

/**
 * Creating, changing, pausing, deleting, running and cancelling a task. The task's schedule
 * follows every change inside the caller's transaction: when Temporal refuses, the change is
 * rolled back with a 503 rather than leaving a task and its schedule apart.
 */

/** The entity's own fields, as the API takes them (the agent loaded by the caller, in the caller's organisation). */
export interface TaskFields {
  title: string;
  description: string | null;
  kind: Task['kind'];
  prompt: string | null;
  promptVariables: Record<string, string>;
  toolName: string | null;
  toolArguments: Record<string, unknown> | null;
  priority: Task['priority'];
  assignmentMode: Task['assignmentMode'];
  agent: Agent | null;
  requiredCapabilities: string[];
  executionMode: Task['executionMode'];
  scheduledAt: Date | null;
  cronExpression: string | null;
  timezone: string;
  overlapPolicy: Task['overlapPolicy'];
  timeoutMs: number | null;
  maxRetries: number;
  enabled: boolean;
}

const NULLABLE = new Set<keyof TaskFields>([
  'description',
  'prompt',
  'toolName',
  'toolArguments',
  'agent',
  'scheduledAt',
  'cronExpression',
  'timeoutMs',
]);

function apply(task: Task, fields: Partial<TaskFields>): string[] {
  const changed: string[] = [];
  for (const [key, value] of Object.entries(fields) as [keyof TaskFields, unknown][]) {
    if (value === undefined) continue;
    (task as unknown as Record<string, unknown>)[key] = value === null && NULLABLE.has(key) ? undefined : value;
    changed.push(key === 'agent' ? 'agentId' : key);
  }
  return changed;
}

async function syncOrUnavailable(temporal: TemporalAccess, task: Task): Promise<void> {
  try {
    await syncTaskSchedule(temporal, task);
  } catch (error) {
    if (error instanceof AppError) throw error;
    throw AppError.temporalUnavailable('The task schedule could not be saved in Temporal; try again', {
      taskId: task.id,
      cause: (error as Error).message,
    });
  }
}

/** The fields that set when a task fires: setting one checks the minimum interval again. */
const SCHEDULE_FIELDS = ['executionMode', 'cronExpression', 'timezone'];

/** `changed`: the fields an update set (undefined for a new task, which is checked in full). */
function validate(task: Task, limits: TaskLimits, changed?: string[]): void {
  const scheduleSet = !changed || changed.some((field) => SCHEDULE_FIELDS.includes(field));
  // Enabling runs the schedule again; disabling is always allowed.
  const enabling = !!changed?.includes('enabled') && task.enabled;
  assertRunnableTask(
    { ...task, agent: task.agent ?? null },
    {
      checkPast: !changed || changed.includes('scheduledAt') || changed.includes('executionMode'),
      // A task saved under a lower floor keeps its schedule until someone sets it or enables the task again.
      minIntervalSeconds: scheduleSet || enabling ? limits.minIntervalSeconds : undefined,
    },
  );
  task.nextRunAt = nextRunAt(task) ?? undefined;
}

/** Which field a cap refusal names: the mode when the request set it, else enabling the task. */
function capPath(changed: string[] | undefined): string {
  return !changed || changed.includes('executionMode') ? 'body.executionMode' : 'body.enabled';
}

/** The task's schedule as it was, to put back when the cap's last check refuses the change. */
function scheduleSnapshot(task: Task): Task {
  const { id, organization, agent, title, executionMode, scheduledAt, cronExpression, timezone, enabled, deletedAt } = task;
  return { id, organization, agent, title, executionMode, scheduledAt, cronExpression, timezone, enabled, deletedAt } as Task;
}

/**
 * Keeps `pausedAt` with `enabled`: set when the task is disabled; on enable, the occurrences
 * missed since are recorded SKIPPED (occurrences.ts), and their number is in the audit.
 */
async function pauseOrResume(tx: EntityManager, actor: Actor, task: Task, wasEnabled: boolean): Promise<{ missedWhilePaused?: number }> {
  if (wasEnabled && !task.enabled) task.pausedAt = new Date();
  if (wasEnabled || !task.enabled) return {};
  const pausedAt = task.pausedAt;
  task.pausedAt = undefined;
  return pausedAt ? { missedWhilePaused: await recordPausedOccurrences(tx, actor, task, pausedAt, new Date()) } : {};
}

export async function createTask(
  tx: EntityManager,
  temporal: TemporalAccess,
  actor: Actor,
  fields: TaskFields,
  limits: TaskLimits,
): Promise<Task> {
  const task = tx.create(Task, {
    organization: tx.getReference(Organization, actor.organizationId),
    title: fields.title,
    createdBy: actor.userId ? tx.getReference(User, actor.userId) : undefined,
  });
  const changed = apply(task, fields);
  // A task created disabled is paused from its creation.
  await pauseOrResume(tx, actor, task, true);
  validate(task, limits);
  const capped = countsAsRecurring(task);
  if (capped) await assertRecurringRoom(tx, task, limits, capPath(undefined));
  audit(tx, actor, {
    action: 'task.create',
    resourceType: 'task',
    resourceId: task.id,
    changes: { fields: changed, executionMode: task.executionMode, kind: task.kind },
  });
  await tx.flush();
  // A new task run only by hand has no schedule to create, nor an old one to delete.
  if (hasSchedule(task)) await syncOrUnavailable(temporal, task);
  if (capped) await assertRecurringRoomLocked(tx, task, limits, capPath(undefined), () => deleteTaskSchedule(temporal, task.id));
  return task;
}

export async function updateTask(
  tx: EntityManager,
  temporal: TemporalAccess,
  actor: Actor,
  task: Task,
  fields: Partial<TaskFields>,
  limits: TaskLimits,
): Promise<Task> {
  const wasEnabled = task.enabled;
  const before = scheduleSnapshot(task);
  const wasCapped = countsAsRecurring(task);
  const changed = apply(task, fields);
  validate(task, limits, changed);
  const capped = !wasCapped && countsAsRecurring(task);
  if (capped) await assertRecurringRoom(tx, task, limits, capPath(changed));
  const paused = await pauseOrResume(tx, actor, task, wasEnabled);
  audit(tx, actor, { action: 'task.update', resourceType: 'task', resourceId: task.id, changes: { fields: changed, ...paused } });
  await tx.flush();
  await syncOrUnavailable(temporal, task);
  if (capped) await assertRecurringRoomLocked(tx, task, limits, capPath(changed), () => restoreSchedule(temporal, before));
  return task;
}

/** Pause (disable) or resume (enable): the schedule pauses with it. */
export async function setTaskEnabled(
  tx: EntityManager,
  temporal: TemporalAccess,
  actor: Actor,
  task: Task,
  enabled: boolean,
  limits: TaskLimits,
): Promise<Task> {
  const wasEnabled = task.enabled;
  const before = scheduleSnapshot(task);
  const wasCapped = countsAsRecurring(task);
  task.enabled = enabled;
  if (enabled) validate(task, limits, wasEnabled ? [] : ['enabled']);
  task.nextRunAt = nextRunAt(task) ?? undefined;
  const capped = !wasCapped && countsAsRecurring(task);
  if (capped) await assertRecurringRoom(tx, task, limits, 'body.enabled');
  const paused = await pauseOrResume(tx, actor, task, wasEnabled);
  audit(tx, actor, {
    action: enabled ? 'task.resume' : 'task.pause',
    resourceType: 'task',
    resourceId: task.id,
    ...(paused.missedWhilePaused !== undefined ? { changes: paused } : {}),
  });
  await tx.flush();
  await syncOrUnavailable(temporal, task);
  if (capped) await assertRecurringRoomLocked(tx, task, limits, 'body.enabled', () => restoreSchedule(temporal, before));
  return task;
}

/** Puts a schedule back as it was before a change the cap refused; a failure is left to the next save of the task. */
async function restoreSchedule(temporal: TemporalAccess, before: Task): Promise<void> {
  await syncTaskSchedule(temporal, before).catch(() => undefined);
}

/** The task's runs that have not ended (running, queued for a slot, or waiting their turn), oldest first. */
export function liveTaskRuns(em: EntityManager, task: Task): Promise<Execution[]> {
  return em.find(Execution, { task, status: { $in: [...LIVE_EXECUTION_STATUSES] } }, { orderBy: { createdAt: 'asc', id: 'asc' } });
}

/**
 * Deletes the task: its schedule goes, its row stays (marked deleted) so its runs keep their
 * `taskId`. With live runs it is a 409 `task_running`, unless `force`, which cancels them.
 */
export async function deleteTask(
  tx: EntityManager,
  temporal: TemporalAccess,
  actor: Actor,
  task: Task,
  force: boolean,
): Promise<Execution[]> {
  const live = await liveTaskRuns(tx, task);
  if (live.length && !force) {
    throw AppError.conflict(
      'task_running',
      `The task has ${live.length} run${live.length === 1 ? '' : 's'} not ended; cancel them first or delete with ?force=true`,
      { executionIds: live.map((e) => e.id) },
    );
  }
  task.deletedAt = new Date();
  task.enabled = false;
  task.nextRunAt = undefined;
  audit(tx, actor, {
    action: 'task.delete',
    resourceType: 'task',
    resourceId: task.id,
    changes: { title: task.title, cancelledRuns: live.map((e) => e.id) },
  });
  await tx.flush();
  await syncOrUnavailable(temporal, task);
  return live;
}

/**
 * Run now: one occurrence through the same `taskRun` as the schedule's, so the overlap policy,
 * the assignment rules, the timeout and the retries apply alike.
 *
 * The occurrence is decided here, before the answer, by the same step its workflow takes first
 * (`beginOccurrence`, under the task's row lock unless ALLOW_ALL): the run the answer names exists (RUNNING,
 * QUEUED, or already SKIPPED or FAILED with its reason) when the answer leaves, so its
 * `Location` resolves at once. The workflow then finds the row its first step would have
 * written and goes on from it, as a retried activity does: the decision is taken once, and the
 * run runs once, by that workflow. Nothing else can start it: its workflow id is new.
 */
export async function runTaskNow(
  deps: RunDeps,
  actor: Actor,
  task: Task,
): Promise<{ executionId: string; workflowId: string; status: ExecutionStatus }> {
  if (!task.enabled) throw AppError.conflict('task_disabled', 'The task is disabled; resume it first');
  const em = deps.orm.em;
  const executionId = randomUUID();
  const workflowId = taskRunWorkflowId(task.id, executionId);
  audit(em, actor, { action: 'task.run', resourceType: 'task', resourceId: task.id, changes: { executionId } });
  await em.flush();
  try {
    const step = await decideOccurrence(deps, {
      taskId: task.id,
      executionId,
      trigger: 'manual',
      taskRunWorkflowId: workflowId,
      ...(actor.userId ? { requestedBy: actor.userId } : {}),
    });
    await startTaskRun(deps.temporal, {
      taskId: task.id,
      trigger: 'manual',
      executionId,
      requestedBy: actor.userId,
      organizationId: task.organization.id,
      agentId: task.agent?.id,
    });
    const status =
      step.next === 'end'
        ? ExecutionStatus[step.status]
        : step.next === 'run' && step.slotTaken
          ? ExecutionStatus.RUNNING
          : ExecutionStatus.QUEUED;
    return { executionId, workflowId, status };
  } catch (error) {
    // Nothing will run it: a run already decided ends FAILED, its slot given back (a run queued
    // behind it, or an occurrence waiting its turn, finds out on its own next re-check).
    await endOccurrence(deps, task.id, executionId, {
      status: 'FAILED',
      error: 'the run could not be started (Temporal unavailable)',
    }).catch((cleanup: unknown) => deps.logger.error({ err: cleanup, executionId }, 'could not end a run that was not started'));
    if (error instanceof AppError) throw error;
    deps.logger.error({ err: error, executionId }, 'could not start taskRun');
    throw AppError.temporalUnavailable('The run could not be started; try again', { taskId: task.id });
  }
}

/** Tries of the decision before run now gives up with a 503; 0.1 s doubling, about 3 s in all. */
const DECISION_ATTEMPTS = 5;

/**
 * The occurrence's first step, tried again when its transaction loses a race with the runs it
 * meets (a run's own event taking the seq of the status it writes for a TERMINATE_OTHER, a
 * deadlock), as Temporal retries the same step in the workflow. It is keyed by the execution
 * id, so a try that did commit is found by the next one, never taken twice.
 */
async function decideOccurrence(
  deps: RunDeps,
  request: Parameters<typeof beginOccurrence>[1],
): Promise<Awaited<ReturnType<typeof beginOccurrence>>> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await beginOccurrence(deps, request);
    } catch (error) {
      if (error instanceof AppError || attempt >= DECISION_ATTEMPTS) throw error;
      deps.logger.warn({ err: error, executionId: request.executionId, attempt }, 'run now: deciding the occurrence failed; trying again');
      await new Promise((resolve) => setTimeout(resolve, 100 * 2 ** (attempt - 1)));
    }
  }
}

/**
 * Cancels the task's runs: every live one (each through its occurrence's workflow, which stops
 * its retries too, reaching the host as notifications/cancelled), and the occurrences between
 * two attempts; or, with `executionId`, that run only.
 */
export async function cancelTaskRuns(
  deps: Pick<RunDeps, 'orm' | 'temporal'>,
  actor: Actor,
  task: Task,
  executionId?: string,
): Promise<string[]> {
  const em = deps.orm.em.fork();
  if (executionId) {
    const execution = await em.findOne(Execution, { id: executionId, task });
    if (!execution) throw AppError.notFound('Execution');
    await cancelExecution(deps, actor, execution);
    return [execution.id];
  }
  const live = await liveTaskRuns(em, task);
  // Every host hears of it in one NOTIFY round trip; the audit in one flush; then Temporal.
  await publishCancels(
    em,
    live.filter((e) => SLOT_HOLDING_STATUSES.includes(e.status)).map((e) => e.id),
  );
  for (const execution of live)
    audit(em, actor, {
      action: 'execution.cancel',
      resourceType: 'execution',
      resourceId: execution.id,
      changes: { status: execution.status, taskId: task.id },
    });
  await em.flush();
  await Promise.all(live.map((execution) => runOwner(deps.temporal, execution).cancel().catch(ignoreEnded)));
  const owners = new Set(live.map((e) => e.taskRunWorkflowId));
  const between = (await openTaskRuns(deps.temporal, task.id).catch(() => [] as string[])).filter((id) => !owners.has(id));
  await Promise.all(between.map((id) => stopWorkflow(deps.temporal, id, 'cancel')));
  return live.map((e) => e.id);
}

/** A run that ended meanwhile has nothing left to cancel. */
function ignoreEnded(error: unknown): void {
  if (!(error instanceof WorkflowNotFoundError)) throw error;
}
