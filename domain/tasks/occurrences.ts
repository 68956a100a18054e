import type { EntityManager } from '@mikro-orm/postgresql';
import {
  Agent,
  Execution,
  ExecutionStatus,
  ExecutionTrigger,
  LIVE_EXECUTION_STATUSES,
  OverlapPolicy,
  SLOT_HOLDING_STATUSES,
  Task,
  TaskKind,
} from '../../entities';
import type { AttemptOutcome, OccurrenceRequest, OccurrenceStep, Wakeups } from '../../workflows/contracts/task-run';
import type { Actor } from '../actor';
import { AppError } from '../errors';
import { publishEventOnCommit } from '../events';
import { publishCancel } from '../runs/cancel';
import { isFinal, markFinished } from '../runs/execution-status';
import { finishExecution } from '../runs/finish-execution';
import { lockExecution } from '../runs/row-locks';
import { releaseSlot } from '../runs/slots';
import type { RunDeps } from '../runs/run-deps';
import { assignExecution, createExecution, recordExecution, type TaskRunFields } from '../runs/start-execution';
import { searchAttributes, stopWorkflow, wakeQueuedRuns } from '../temporal';
import { resolveAgent, type Assignment } from './assignment';
import { decideOverlap, isWaiting } from './overlap';
import { nextRunAt } from './task-schedule';
import { renderPrompt } from './task-rules';

/**
 * The steps of one occurrence of a task, as its `taskRun` workflow takes them (through the
 * activities in activities/tasks.activities.ts). Each decision that counts the task's runs (its
 * overlap policy, a waiting occurrence's turn) runs in one transaction holding the task's row
 * lock, so they are counted once per decision; an ALLOW_ALL occurrence counts none and is
 * decided beside the others (`beginAlongside`). Ending a run (settleAttempt, endOccurrence)
 * takes no task lock. Each step is keyed by the execution id the workflow chose, so a retried
 * activity finds what it already wrote.
 */

const TRIGGERS: Record<OccurrenceRequest['trigger'], ExecutionTrigger> = {
  schedule: ExecutionTrigger.SCHEDULE,
  manual: ExecutionTrigger.MANUAL,
  retry: ExecutionTrigger.RETRY,
};

/** The task with its agent and the agent's server, in one query; `refresh`: read again, as it is now. */
function readTask(tx: EntityManager, taskId: string, refresh = false): Promise<Task | null> {
  return tx.findOne(Task, taskId, { populate: ['agent', 'agent.server'], strategy: 'joined', refresh });
}

/**
 * The task, locked until `tx` ends and as it is now. FOR NO KEY UPDATE (domain/runs/row-locks.ts):
 * it keeps the task's other decisions in line without blocking the key checks of runs being
 * written for the task beside it (an ALLOW_ALL occurrence's). `read`: the task as `tx` read it
 * before the lock, kept when nobody wrote it since: every write of a task moves its updated_at
 * but an ALLOW_ALL occurrence's counters, which it writes only while the task is ALLOW_ALL.
 */
async function lockTask(tx: EntityManager, taskId: string, read?: Task): Promise<Task | null> {
  const [row] = await tx.execute<{ unchanged: boolean | null }[]>(
    `select date_trunc('milliseconds', updated_at) = ? as unchanged from tasks where id = ? for no key update`,
    [read?.updatedAt ?? null, taskId],
  );
  if (!row) return null;
  if (read && row.unchanged) return read;
  // Read again; a refresh of a task already read also reloads its relations, one query each.
  return readTask(tx, taskId, !!tx.getUnitOfWork().getById(Task.name, taskId));
}

function liveRuns(tx: EntityManager, taskId: string): Promise<Execution[]> {
  return tx.find(Execution, { task: taskId, status: { $in: [...LIVE_EXECUTION_STATUSES] } }, { orderBy: { createdAt: 'asc', id: 'asc' } });
}

function actorFor(task: Task, request: Pick<OccurrenceRequest, 'trigger' | 'requestedBy'>): Actor {
  return {
    organizationId: task.organization.id,
    userId: request.requestedBy,
    via: request.trigger === 'schedule' ? 'schedule' : 'workflow',
  };
}

/** The step an existing row stands for (a retried activity, or a run that has moved on). */
function stepOf(execution: Execution, task: Task | null): OccurrenceStep {
  const maxRetries = task?.maxRetries ?? 0;
  if (isFinal(execution.status))
    return {
      next: 'end',
      executionId: execution.id,
      maxRetries,
      status: execution.status as Extract<OccurrenceStep, { next: 'end' }>['status'],
      reason: execution.error ?? '',
    };
  if (isWaiting(execution))
    return { next: 'wait', executionId: execution.id, maxRetries, reason: 'waiting for the earlier runs of the task' };
  return {
    next: 'run',
    executionId: execution.id,
    slotTaken: execution.status === ExecutionStatus.RUNNING,
    tool: !!execution.toolName,
    timeoutMs: task?.timeoutMs ?? null,
    maxRetries,
    searchAttributes: searchAttributes({
      organizationId: execution.organization.id,
      agentId: execution.agent!.id,
      serverId: execution.agent!.server.id,
      taskId: task?.id,
      kind: 'agent-execution',
    }),
  };
}

/** What a run of the task does, from the task as it is now: its prompt, or the tool it calls. */
export function runContent(task: Task): { prompt: string; toolName?: string; toolArguments?: Record<string, unknown> } {
  if (task.kind === TaskKind.TOOL)
    return { prompt: `tool ${task.toolName}`, toolName: task.toolName, toolArguments: task.toolArguments ?? {} };
  return { prompt: renderPrompt(task.prompt ?? '', task.promptVariables) };
}

/** The run's content and links, from the task as it is now. */
function runFields(task: Task, request: OccurrenceRequest): TaskRunFields & { prompt: string; taskId: string; trigger: ExecutionTrigger } {
  return {
    executionId: request.executionId,
    taskId: task.id,
    trigger: TRIGGERS[request.trigger],
    taskRunWorkflowId: request.taskRunWorkflowId,
    scheduledFor: request.scheduledFor ? new Date(request.scheduledFor) : undefined,
    retryOf: request.retryOf,
    ...runContent(task),
  };
}

/** A `task:occurrence` event for the run, sent with the transaction's commit. */
export async function announce(tx: EntityManager, task: Task, execution: Execution, reason: string | null): Promise<void> {
  await publishEventOnCommit(tx, {
    type: 'task:occurrence',
    organizationId: task.organization.id,
    taskId: task.id,
    executionId: execution.id,
    status: execution.status,
    trigger: execution.trigger,
    scheduledFor: execution.scheduledFor?.toISOString() ?? null,
    reason,
    at: new Date().toISOString(),
  });
}

/** The occurrence started a run (not a retry, not a skip): the task's counters move. */
function counted(task: Task): void {
  task.lastRunAt = new Date();
  task.runCount += 1;
}

/** What a run is started from: a new one's fields, or the row of one that waited its turn. */
type RunSource = { fields: ReturnType<typeof runFields>; actor: Actor } | { waiting: Execution };

/** Starts the run on the agent chosen (QUEUED or RUNNING), or records it FAILED with the reason. */
async function startOrFail(tx: EntityManager, task: Task, source: RunSource, assignment?: Assignment): Promise<Execution> {
  assignment ??= await resolveAgent(tx, task);
  if (!assignment.ok) return fail(tx, source, assignment.reason);
  try {
    if ('fields' in source)
      return await createExecution(tx, source.actor, {
        ...source.fields,
        agent: tx.getReference(Agent, assignment.agentId),
        assignmentReason: assignment.reason,
      });
    await assignExecution(tx, source.waiting, assignment.agentId, assignment.reason);
    return source.waiting;
  } catch (error) {
    // The agent stopped taking runs between the choice and its lock.
    if (!(error instanceof AppError && error.code === 'agent_not_active')) throw error;
    return fail(tx, source, `${assignment.reason}; but ${error.message}`);
  }
}

async function fail(tx: EntityManager, source: RunSource, reason: string): Promise<Execution> {
  if ('fields' in source)
    return recordExecution(tx, source.actor, { ...source.fields, status: ExecutionStatus.FAILED, error: reason, assignmentReason: reason });
  source.waiting.assignmentReason = reason;
  await markFinished(tx, source.waiting, { status: 'FAILED', error: reason });
  return source.waiting;
}

interface Decided {
  step: OccurrenceStep;
  /** Other occurrences' runs to stop once the decision is committed. */
  stop: { execution: Execution; how: 'cancel' | 'terminate'; reason: string }[];
  slotFreed: string[];
}

/** Side effects of a committed decision that reach other workflows and workers. */
async function applyDecision(deps: RunDeps, em: EntityManager, decided: Decided): Promise<OccurrenceStep> {
  for (const { execution, how, reason } of decided.stop) {
    if (SLOT_HOLDING_STATUSES.includes(execution.status) || how === 'terminate') await publishCancel(em, execution.id);
    await stopWorkflow(deps.temporal, execution.taskRunWorkflowId ?? execution.workflowId!, how, reason);
  }
  await wakeQueuedRuns(deps.temporal, decided.slotFreed);
  return decided.step;
}

/** Why a new occurrence of the task does not run at all, whatever its other runs: null when it may. */
function refusal(task: Task, request: OccurrenceRequest): string | null {
  if (task.deletedAt) return 'skipped: the task was deleted';
  if (!task.enabled && request.trigger === 'schedule') return 'skipped: the task is disabled';
  return null;
}

const NO_SIDE_EFFECTS = { stop: [], slotFreed: [] };

/**
 * The occurrence's first decision: its overlap policy against the task's live runs, then the
 * agent. An ALLOW_ALL occurrence is decided beside the task's others (`beginAlongside`), any
 * other under the task's lock (`beginUnderLock`).
 */
export async function beginOccurrence(deps: RunDeps, request: OccurrenceRequest): Promise<OccurrenceStep> {
  const em = deps.orm.em.fork();
  const decided = await em.transactional(async (tx) => {
    const task = await readTask(tx, request.taskId);
    return (await beginAlongside(tx, task, request)) ?? beginUnderLock(tx, task, request);
  });
  return applyDecision(deps, em, decided);
}

/**
 * An ALLOW_ALL occurrence counts none of the task's runs, so it reads the task, its own row (a
 * retried activity) and the agents without the task's lock, while the task's other occurrences
 * decide too; the slot it takes is counted under the agent's lock (createExecution). It takes
 * the task's row only to write the task's counters: first, before the agent (the order of
 * domain/runs/row-locks.ts), on the condition that the task is as it was read (not edited, not
 * deleted or disabled, still ALLOW_ALL). Null when the task is not ALLOW_ALL or has changed
 * meanwhile, with nothing written: the caller decides under the lock.
 */
async function beginAlongside(tx: EntityManager, task: Task | null, request: OccurrenceRequest): Promise<Decided | null> {
  if (!task || task.overlapPolicy !== OverlapPolicy.ALLOW_ALL || refusal(task, request)) return null;
  const existing = await tx.findOne(Execution, request.executionId, { populate: ['agent'] });
  if (existing) return { step: stepOf(existing, task), ...NO_SIDE_EFFECTS };
  const assignment = await resolveAgent(tx, task);
  // An edit writes updated_at (at ms, as MikroORM wrote it); a run's counters below do not.
  const unchanged = await tx.execute<{ id: string }[]>(
    `select id from tasks
     where id = ? and overlap_policy = ? and deleted_at is null and (enabled or ?) and date_trunc('milliseconds', updated_at) = ?
     for no key update`,
    [task.id, OverlapPolicy.ALLOW_ALL, request.trigger !== 'schedule', task.updatedAt],
  );
  if (!unchanged.length) return null;
  const execution = await startOrFail(tx, task, { fields: runFields(task, request), actor: actorFor(task, request) }, assignment);
  const ran = execution.status !== ExecutionStatus.FAILED;
  await tx.execute(
    'update tasks set next_run_at = ?, run_count = run_count + ?, last_run_at = case when ? then ? else last_run_at end where id = ?',
    [nextRunAt(task), ran ? 1 : 0, ran, new Date(), task.id],
  );
  await announce(tx, task, execution, execution.error ?? execution.assignmentReason ?? null);
  return { step: stepOf(execution, task), ...NO_SIDE_EFFECTS };
}

/** The occurrence decided under the task's lock, against the task's live runs. */
async function beginUnderLock(tx: EntityManager, read: Task | null, request: OccurrenceRequest): Promise<Decided> {
  const task = await lockTask(tx, request.taskId, read ?? undefined);
  const existing = await tx.findOne(Execution, request.executionId, { populate: ['agent'] });
  if (existing) return { step: stepOf(existing, task), ...NO_SIDE_EFFECTS };
  if (!task)
    return {
      step: { next: 'end', executionId: request.executionId, maxRetries: 0, status: 'SKIPPED', reason: 'the task no longer exists' },
      ...NO_SIDE_EFFECTS,
    };
  const actor = actorFor(task, request);
  const fields = runFields(task, request);
  const refused = refusal(task, request);
  const decision = refused
    ? { action: 'skip' as const, reason: refused }
    : // ALLOW_ALL counts none of them (an occurrence here when its task changed as it was decided).
      decideOverlap(task.overlapPolicy, task.overlapPolicy === OverlapPolicy.ALLOW_ALL ? [] : await liveRuns(tx, task.id));
  let execution: Execution;
  const stop: Decided['stop'] = [];
  const slotFreed: string[] = [];
  if (decision.action === 'skip') {
    execution = await recordExecution(tx, actor, { ...fields, status: ExecutionStatus.SKIPPED, error: decision.reason });
  } else if (decision.action === 'wait') {
    execution = await recordExecution(tx, actor, fields);
    stop.push(...decision.cancel.map((e) => ({ execution: e, how: 'cancel' as const, reason: decision.reason })));
  } else {
    const reason = `terminated: occurrence ${request.executionId} replaced it (overlap policy TERMINATE_OTHER)`;
    // Every run before any agent (domain/runs/row-locks.ts), and read again under its lock.
    for (const other of decision.terminate) await lockExecution(tx, { id: other.id });
    for (const other of decision.terminate) {
      await markFinished(tx, other, { status: 'CANCELLED', error: reason });
      if (other.agent) slotFreed.push(...(await releaseSlot(tx, other.agent.id)));
      stop.push({ execution: other, how: 'terminate', reason });
    }
    execution = await startOrFail(tx, task, { fields, actor });
    if (execution.status !== ExecutionStatus.FAILED) counted(task);
  }
  task.nextRunAt = nextRunAt(task) ?? undefined;
  await tx.flush();
  const reason = decision.action === 'run' ? (execution.error ?? execution.assignmentReason ?? null) : decision.reason;
  await announce(tx, task, execution, reason);
  return { step: stepOf(execution, task), stop, slotFreed };
}

/** A waiting occurrence checks whether its turn has come: no run of the task ahead of it is live. */
export async function resumeOccurrence(deps: RunDeps, executionId: string): Promise<OccurrenceStep> {
  const em = deps.orm.em.fork();
  return em.transactional(async (tx) => {
    const found = await tx.findOne(Execution, executionId, { populate: ['task'] });
    if (!found) return { next: 'end', executionId, maxRetries: 0, status: 'CANCELLED', reason: 'the run no longer exists' };
    const task = found.task ? await lockTask(tx, found.task.id) : null;
    // The run after its task, before its agent (domain/runs/row-locks.ts).
    const execution = await lockExecution(tx, { id: executionId }, ['agent']);
    if (!execution) return { next: 'end', executionId, maxRetries: 0, status: 'CANCELLED', reason: 'the run no longer exists' };
    if (!task || !isWaiting(execution)) return stepOf(execution, task);
    if (task.deletedAt) {
      await markFinished(tx, execution, { status: 'CANCELLED', error: 'the task was deleted' });
      return stepOf(execution, task);
    }
    const ahead = (await liveRuns(tx, task.id)).filter(
      (e) =>
        e.id !== execution.id &&
        (!isWaiting(e) ||
          e.createdAt < execution.createdAt ||
          (e.createdAt.getTime() === execution.createdAt.getTime() && e.id < execution.id)),
    );
    if (ahead.length)
      return {
        next: 'wait',
        executionId,
        maxRetries: task.maxRetries,
        reason: `behind run ${ahead[0]!.id}${ahead.length > 1 ? ` and ${ahead.length - 1} more` : ''}`,
      };
    await startOrFail(tx, task, { waiting: execution });
    if (execution.status !== ExecutionStatus.FAILED) counted(task);
    await tx.flush();
    await announce(tx, task, execution, execution.error ?? execution.assignmentReason ?? null);
    return stepOf(execution, task);
  });
}

/** A new attempt after a FAILED or TIMED_OUT run: a new execution linked by `retryOf`, past the overlap policy (it is the same occurrence). */
export async function retryOccurrence(deps: RunDeps, request: OccurrenceRequest): Promise<OccurrenceStep> {
  const em = deps.orm.em.fork();
  return em.transactional(async (tx) => {
    const task = await lockTask(tx, request.taskId);
    const existing = await tx.findOne(Execution, request.executionId, { populate: ['agent'] });
    if (existing) return stepOf(existing, task);
    if (!task || task.deletedAt)
      return { next: 'end', executionId: request.executionId, maxRetries: 0, status: 'CANCELLED', reason: 'the task was deleted' };
    const execution = await startOrFail(tx, task, { fields: runFields(task, request), actor: actorFor(task, request) });
    await tx.flush();
    await announce(tx, task, execution, execution.error ?? execution.assignmentReason ?? null);
    return stepOf(execution, task);
  });
}

/** The oldest occurrence of the task waiting its turn: the one to wake when a run of the task ends. */
async function nextWaiting(em: EntityManager, taskId: string | undefined): Promise<string[]> {
  if (!taskId) return [];
  const [waiting] = await em.find(
    Execution,
    { task: taskId, status: ExecutionStatus.QUEUED, agent: null },
    { orderBy: { createdAt: 'asc', id: 'asc' }, limit: 1, fields: ['taskRunWorkflowId'] },
  );
  return waiting?.taskRunWorkflowId ? [waiting.taskRunWorkflowId] : [];
}

/** After an attempt: its end recorded (idempotent; a terminated child could not), and who to wake. */
export async function settleAttempt(deps: RunDeps, executionId: string, outcome: AttemptOutcome): Promise<Wakeups> {
  const em = deps.orm.em.fork();
  const status = outcome.status === 'SKIPPED' ? 'CANCELLED' : outcome.status;
  const slotFreed = await finishExecution(em, executionId, { status, error: outcome.error });
  const execution = await em.findOne(Execution, executionId);
  return { slotFreed, taskRuns: await nextWaiting(em, execution?.task?.id) };
}

/** The task's `timeoutMs` passed: the run is TIMED_OUT now, and the worker running it aborts its call at once. */
export async function timeOutRun(deps: RunDeps, executionId: string, timeoutMs: number): Promise<void> {
  const em = deps.orm.em.fork();
  const execution = await em.findOne(Execution, executionId);
  if (!execution || isFinal(execution.status)) return;
  const running = SLOT_HOLDING_STATUSES.includes(execution.status);
  await markFinished(em, execution, { status: 'TIMED_OUT', error: `the run did not finish within ${timeoutMs} ms (the task's timeoutMs)` });
  if (running) await publishCancel(em, executionId);
}

/** The occurrence is over (or was cancelled while waiting): its last run is final, the next waiting one is woken. */
export async function endOccurrence(deps: RunDeps, taskId: string, executionId: string, outcome: AttemptOutcome): Promise<Wakeups> {
  const em = deps.orm.em.fork();
  const execution = await em.findOne(Execution, executionId);
  let slotFreed: string[] = [];
  if (execution && !isFinal(execution.status)) {
    const status = outcome.status === 'COMPLETED' || outcome.status === 'SKIPPED' ? 'CANCELLED' : outcome.status;
    slotFreed = await finishExecution(em, executionId, { status, error: outcome.error ?? 'cancelled by request' });
  }
  return { slotFreed, taskRuns: await nextWaiting(em, taskId) };
}
