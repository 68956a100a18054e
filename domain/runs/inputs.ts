import type { EntityManager } from '@mikro-orm/postgresql';
import { UniqueConstraintViolationException } from '@mikro-orm/core';
import { Execution, ExecutionInput, ExecutionInputStatus, ExecutionStatus, type InputAction } from '../../entities';
import type { Actor } from '../actor';
import { audit } from '../audit';
import { AppError, fieldError } from '../errors';
import { publishEventOnCommit } from '../events';
import { signalInputAnswered, type TemporalAccess } from '../temporal';
import { CONTROL_CHANNEL } from './control-channel';
import { appendEvent, type ExecutionRef } from './execution-log';
import { executionRef, isFinal } from './execution-status';
import { lockExecution } from './row-locks';
import { answerProblems, formSchemaProblem, inputRequestKey } from './input-schema';
import { syncAgentRunStatus } from './slots';

/**
 * Input requests: a host asks a person something during a run (MCP elicitation), the run
 * waits (WAITING_INPUT, keeping its slot), a person answers through the API, the run goes on.
 *
 * The `execution_inputs` row is the authority. Every change is a compare-and-set on its status
 * (PENDING → ANSWERED → DELIVERED, PENDING → EXPIRED, open → CANCELLED), so an answer and an
 * expiry, or two answers, never both win. Each command locks the execution's row first, which
 * keeps the run's status and its question in step; then come its question, its events and its
 * agent, in the order of row-locks.ts.
 *
 * Callers: the worker's elicitation handler (`requestInput`, `markInputDelivered`), the
 * workflow's timeout (`expireInput`), the API (`answerInput`), the end of a run
 * (`cancelOpenInputs`).
 */

export interface InputRequest {
  executionId: string;
  message: string;
  /** The elicitation's `requestedSchema`: a flat form (domain/runs/input-schema.ts). */
  requestedSchema: Record<string, unknown>;
  /** The MCP task the question came through, for a task-backed run. */
  taskId?: string;
}

export interface InputAnswer {
  action: InputAction;
  content?: Record<string, unknown>;
}

/**
 * What the host's question leads to:
 * - `pending`: wait for a person (`created` is false when the host asked this open question before);
 * - `answered`: a person already answered (a resumed run meets its question again): give the
 *   host `answer` now, then `markInputDelivered`;
 * - `refused`: nobody can answer it (the run ended, another question is open, the schema is not
 *   a flat form): decline it with `reason`.
 */
export type InputRequestOutcome =
  | { state: 'pending'; input: ExecutionInput; created: boolean }
  | { state: 'answered'; input: ExecutionInput; answer: InputAnswer }
  | { state: 'refused'; reason: string };

/** Told on `fleet_control` when a question is answered: a worker holding a plain call's question wakes up. */
export interface InputCommand {
  type: 'input';
  executionId: string;
  inputId: string;
}

const OPEN: readonly ExecutionInputStatus[] = [ExecutionInputStatus.PENDING, ExecutionInputStatus.ANSWERED];

/** Moves a live run between RUNNING and WAITING_INPUT, with its status event and its agent's status. */
async function moveRun(tx: EntityManager, execution: Execution, to: ExecutionStatus, data: Record<string, unknown>): Promise<void> {
  if (execution.status === to || isFinal(execution.status) || execution.status === ExecutionStatus.QUEUED) return;
  execution.status = to;
  await tx.flush();
  await appendEvent(tx, executionRef(execution), execution.attempt, 'status', { status: to, data });
  if (execution.agent) await syncAgentRunStatus(tx, execution.agent.id);
}

function answerOf(input: ExecutionInput): InputAnswer {
  return { action: input.action!, ...(input.content ? { content: input.content } : {}) };
}

/**
 * Records the host's question for a run (idempotent: the same open question maps to the same
 * row) and, when it is new, makes the run wait for it: the execution (and its agent) becomes
 * WAITING_INPUT, the log gets its `status` and `input_required` events, and the agent's and
 * organisation's rooms hear `agent:input_required`. `defaultTimeoutMs` (config
 * `executions.inputTimeoutMs`) applies unless the run set its own `inputTimeoutMs`.
 */
export async function requestInput(em: EntityManager, request: InputRequest, defaultTimeoutMs: number): Promise<InputRequestOutcome> {
  const problem = formSchemaProblem(request.requestedSchema);
  if (problem) return { state: 'refused', reason: problem };
  const requestKey = inputRequestKey(request.message, request.requestedSchema, request.taskId);
  for (let tries = 0; ; tries++) {
    try {
      return await em.transactional((tx) => recordQuestion(tx, request, requestKey, defaultTimeoutMs));
    } catch (error) {
      // Two deliveries of one question raced (the execution lock makes this rare): read again.
      if (!(error instanceof UniqueConstraintViolationException) || tries >= 3) throw error;
    }
  }
}

async function recordQuestion(
  tx: EntityManager,
  request: InputRequest,
  requestKey: string,
  defaultTimeoutMs: number,
): Promise<InputRequestOutcome> {
  const execution = await lockExecution(tx, { id: request.executionId });
  if (!execution) return { state: 'refused', reason: 'the execution no longer exists' };
  const known = await tx.findOne(ExecutionInput, { execution, requestKey, status: { $in: [...OPEN] } });
  if (known?.status === ExecutionInputStatus.ANSWERED) return { state: 'answered', input: known, answer: answerOf(known) };
  if (known) return { state: 'pending', input: known, created: false };
  if (isFinal(execution.status)) return { state: 'refused', reason: `the execution is already ${execution.status}` };
  const other = await tx.findOne(ExecutionInput, { execution, status: ExecutionInputStatus.PENDING });
  if (other) return { state: 'refused', reason: 'another question of this run is waiting for its answer' };

  // Both times from one clock reading: the wait's length (inputWaitOf) is their difference, exactly the timeout.
  const createdAt = new Date();
  const input = tx.create(ExecutionInput, {
    organization: execution.organization,
    execution,
    taskId: request.taskId,
    requestKey,
    message: request.message,
    requestedSchema: request.requestedSchema,
    createdAt,
    expiresAt: new Date(createdAt.getTime() + (execution.inputTimeoutMs ?? defaultTimeoutMs)),
  });
  await tx.flush();
  await moveRun(tx, execution, ExecutionStatus.WAITING_INPUT, { inputId: input.id });
  const ref = executionRef(execution);
  const question = {
    inputId: input.id,
    message: input.message,
    requestedSchema: input.requestedSchema,
    expiresAt: input.expiresAt.toISOString(),
  };
  await appendEvent(tx, ref, execution.attempt, 'input_required', { input: question });
  await publishEventOnCommit(tx, {
    type: 'agent:input_required',
    organizationId: ref.organizationId,
    executionId: ref.id,
    agentId: ref.agentId,
    ...question,
    at: new Date().toISOString(),
  });
  return { state: 'pending', input, created: true };
}

/**
 * A person answers the run's pending question (in their organisation). 409 `no_pending_input`
 * when none is pending (never asked, already answered, expired); 400 naming each field when an
 * `accept` does not fit the question's schema, or when a decline or cancel carries content.
 * Audited (`execution.input`), logged (`input_answered`, without the content); the run is
 * RUNNING again. Then the run's workflow is signalled, best-effort: a lost signal is covered
 * by the workflow re-reading the row. Returns whether the signal went out.
 */
export async function answerInput(
  deps: { orm: { em: EntityManager }; temporal: Pick<TemporalAccess, 'client'> },
  actor: Actor,
  executionId: string,
  answer: InputAnswer,
): Promise<{ input: ExecutionInput; signalled: boolean }> {
  if (answer.action !== 'accept' && answer.content !== undefined)
    throw fieldError('body.content', `a ${answer.action} carries no content`, 'unexpected');
  const input = await deps.orm.em.fork().transactional(async (tx) => {
    const execution = await lockExecution(tx, { id: executionId, organization: actor.organizationId });
    if (!execution) throw AppError.notFound('Execution');
    const pending = await tx.findOne(ExecutionInput, { execution, status: ExecutionInputStatus.PENDING });
    if (!pending) throw AppError.conflict('no_pending_input', 'The execution has no question waiting for an answer');
    if (answer.action === 'accept') {
      const problems = answerProblems(pending.requestedSchema, answer.content);
      if (problems.length) throw new AppError(400, 'validation_failed', 'The answer does not fit the question', problems);
    }
    const rows = await tx.execute<{ id: string }[]>(
      `update execution_inputs set status = ?, action = ?, content = ?, answered_by_id = ?, answered_at = now()
        where id = ? and status = ? returning id`,
      [
        ExecutionInputStatus.ANSWERED,
        answer.action,
        answer.content === undefined ? null : JSON.stringify(answer.content),
        actor.userId ?? null,
        pending.id,
        ExecutionInputStatus.PENDING,
      ],
    );
    if (!rows.length) throw AppError.conflict('no_pending_input', 'The execution has no question waiting for an answer');
    await tx.refresh(pending);
    await moveRun(tx, execution, ExecutionStatus.RUNNING, { inputId: pending.id });
    await appendEvent(tx, executionRef(execution), execution.attempt, 'input_answered', {
      input: { inputId: pending.id, action: answer.action, answeredBy: actor.userId ?? null },
    });
    audit(tx, actor, {
      action: 'execution.input',
      resourceType: 'execution',
      resourceId: execution.id,
      changes: { inputId: pending.id, action: answer.action },
    });
    await tx.execute('select pg_notify(?, ?)', [
      CONTROL_CHANNEL,
      JSON.stringify({ type: 'input', executionId, inputId: pending.id } satisfies InputCommand),
    ]);
    return pending;
  });
  const signalled = await signalInputAnswered(deps.temporal, executionId, input.id).then(
    () => true,
    () => false,
  );
  return { input, signalled };
}

/** The answer reached the host: ANSWERED → DELIVERED. False when the row was not ANSWERED. */
export async function markInputDelivered(em: EntityManager, inputId: string): Promise<boolean> {
  const rows = await em.execute<{ id: string }[]>('update execution_inputs set status = ? where id = ? and status = ? returning id', [
    ExecutionInputStatus.DELIVERED,
    inputId,
    ExecutionInputStatus.ANSWERED,
  ]);
  return rows.length > 0;
}

/**
 * The input timeout passed: PENDING → EXPIRED. When an answer won the race, `expired` is false
 * and `input` says what happened instead (ANSWERED: resume the run with it).
 */
export async function expireInput(
  em: EntityManager,
  inputId: string,
): Promise<{ expired: true } | { expired: false; input: ExecutionInput | null }> {
  const rows = await em.execute<{ id: string }[]>('update execution_inputs set status = ? where id = ? and status = ? returning id', [
    ExecutionInputStatus.EXPIRED,
    inputId,
    ExecutionInputStatus.PENDING,
  ]);
  if (rows.length) return { expired: true };
  return { expired: false, input: await em.fork().findOne(ExecutionInput, inputId) };
}

/**
 * Closes a run's open questions (PENDING or ANSWERED, not delivered) as CANCELLED: the run
 * ended, or the worker holding a plain call's question was lost. Returns how many.
 */
export async function cancelOpenInputs(em: EntityManager, executionId: string): Promise<number> {
  const rows = await em.execute<{ id: string }[]>(
    `update execution_inputs set status = ? where execution_id = ? and status in (?, ?) returning id`,
    [ExecutionInputStatus.CANCELLED, executionId, ...OPEN],
  );
  return rows.length;
}

/** A row by id (the workflow's re-check of a question while it waits). */
export function findInput(em: EntityManager, inputId: string): Promise<ExecutionInput | null> {
  return em.fork().findOne(ExecutionInput, inputId);
}

/** The run's question waiting for an answer, if any (`GET /api/executions/:id`). */
export function pendingInputOf(em: EntityManager, execution: ExecutionRef | Execution): Promise<ExecutionInput | null> {
  return em.fork().findOne(ExecutionInput, { execution: execution.id, status: ExecutionInputStatus.PENDING });
}

/** The questions waiting for an answer of these runs, by run id, in one query (a page of waiting runs). */
export async function pendingInputsOf(em: EntityManager, executionIds: string[]): Promise<Map<string, ExecutionInput>> {
  if (!executionIds.length) return new Map();
  const inputs = await em.fork().find(ExecutionInput, { execution: { $in: executionIds }, status: ExecutionInputStatus.PENDING });
  return new Map(inputs.map((input) => [input.execution.id, input]));
}
