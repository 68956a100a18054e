import { randomUUID } from 'node:crypto';
import { isSpanContextValid, trace } from '@opentelemetry/api';
import type { EntityManager } from '@mikro-orm/postgresql';
import { Agent, AgentStatus, Execution, ExecutionStatus, ExecutionTrigger, Organization, Task, User } from '../../entities';
import { executionWorkflowId } from '../../workflows/contracts/agent-execution';
import type { Actor } from '../actor';
import { audit } from '../audit';
import { AppError } from '../errors';
import { startAgentExecution } from '../temporal';
import { appendEvent } from './execution-log';
import { executionRef, isFinal } from './execution-status';
import { finishExecution } from './finish-execution';
import { lockAgent } from './row-locks';
import type { RunDeps } from './run-deps';
import { isRunnable, occupySlot, slotForNewRun, takeSlot } from './slots';

export interface StartInput {
  agent: Agent;
  prompt: string;
  context?: Record<string, unknown>;
  trigger: ExecutionTrigger;
  taskId?: string;
  /** How long a question of this run waits for its answer (default: config `INPUT_TIMEOUT_MS`). */
  inputTimeoutMs?: number;
}

/** What a task's run adds to a plain run (domain/tasks/occurrences.ts). */
export interface TaskRunFields {
  /** Chosen by the caller, so that a retried activity finds the row it already wrote. */
  executionId?: string;
  taskRunWorkflowId?: string;
  scheduledFor?: Date;
  retryOf?: string;
  assignmentReason?: string;
  /** For a `kind: tool` task: the tool called instead of execute_prompt. */
  toolName?: string;
  toolArguments?: Record<string, unknown>;
  /** For a delegated run (domain/runs/delegation.ts): its parent run, its depth, and the parent's Update that made it. */
  parentExecutionId?: string;
  depth?: number;
  delegationKey?: string;
}

/** A run as first written: its agent (none yet for a task's run waiting its turn), status and why. */
export type RecordInput = Omit<StartInput, 'agent'> &
  TaskRunFields & { agent?: Agent; status?: ExecutionStatus.QUEUED | ExecutionStatus.SKIPPED | ExecutionStatus.FAILED; error?: string };

/** The trace of the active span (the request's, the activity's), if tracing is on and one is. */
function activeTraceId(): string | undefined {
  const span = trace.getActiveSpan()?.spanContext();
  return span && isSpanContextValid(span) ? span.traceId : undefined;
}

/**
 * Writes an Execution with its audit entry and the first `status` event of its log, in `tx`.
 * A SKIPPED or FAILED row (a task's occurrence that did not run) is final at once.
 */
export async function recordExecution(tx: EntityManager, actor: Actor, input: RecordInput): Promise<Execution> {
  const status = input.status ?? ExecutionStatus.QUEUED;
  const now = new Date();
  const created = tx.create(Execution, {
    ...(input.executionId ? { id: input.executionId } : {}),
    organization: tx.getReference(Organization, actor.organizationId),
    agent: input.agent,
    task: input.taskId ? tx.getReference(Task, input.taskId) : undefined,
    trigger: input.trigger,
    triggeredBy: actor.userId ? tx.getReference(User, actor.userId) : undefined,
    prompt: input.prompt,
    context: input.context,
    status,
    error: input.error,
    taskRunWorkflowId: input.taskRunWorkflowId,
    scheduledFor: input.scheduledFor,
    retryOf: input.retryOf ? tx.getReference(Execution, input.retryOf) : undefined,
    assignmentReason: input.assignmentReason,
    toolName: input.toolName,
    toolArguments: input.toolArguments,
    parentExecution: input.parentExecutionId ? tx.getReference(Execution, input.parentExecutionId) : undefined,
    depth: input.depth ?? 0,
    delegationKey: input.delegationKey,
    inputTimeoutMs: input.inputTimeoutMs,
    traceId: activeTraceId(),
    ...(isFinal(status) ? { completedAt: now, durationMs: 0 } : {}),
  });
  if (!isFinal(status)) created.workflowId = executionWorkflowId(created.id);
  audit(tx, actor, {
    action: 'agent.execute',
    resourceType: 'execution',
    resourceId: created.id,
    changes: {
      agentId: input.agent?.id ?? null,
      trigger: input.trigger,
      ...(input.taskId ? { taskId: input.taskId } : {}),
      ...(input.parentExecutionId ? { parentExecutionId: input.parentExecutionId } : {}),
      ...(status !== ExecutionStatus.QUEUED ? { status } : {}),
    },
  });
  await tx.flush();
  await appendEvent(tx, executionRef(created), created.attempt, 'status', {
    status,
    ...(input.error ? { data: { error: input.error } } : {}),
  });
  return created;
}

/** A 409 `agent_not_active` unless the agent takes new runs. */
function assertRunnable(agent: Agent): void {
  if (!isRunnable(agent.status)) {
    throw AppError.conflict(
      'agent_not_active',
      `The agent is ${agent.status}; only ACTIVE agents execute${agent.status === AgentStatus.PENDING_VALIDATION ? ' (validate it first)' : ''}`,
    );
  }
}

/**
 * The run on its agent, in `tx`: QUEUED with its first event, and RUNNING at once when the agent
 * has a free slot (nobody queued ahead), sparing the workflow a step.
 */
export async function createExecution(tx: EntityManager, actor: Actor, input: StartInput & TaskRunFields): Promise<Execution> {
  const agent = await lockAgent(tx, input.agent.id);
  return createOnLockedAgent(tx, actor, { ...input, agent });
}

/**
 * createExecution for a caller that already holds the agent's row lock (row-locks.ts), with
 * `input.agent` read under it: a 409 `agent_not_active` unless it takes new runs.
 */
export async function createOnLockedAgent(tx: EntityManager, actor: Actor, input: StartInput & TaskRunFields): Promise<Execution> {
  assertRunnable(input.agent);
  const created = await recordExecution(tx, actor, input);
  await takeSlot(tx, created, input.agent);
  return created;
}

/** A task's run that waited its turn without an agent gets one, then a slot when free, in `tx`. */
export async function assignExecution(tx: EntityManager, execution: Execution, agentId: string, assignmentReason: string): Promise<void> {
  const agent = await lockAgent(tx, agentId);
  assertRunnable(agent);
  execution.agent = agent;
  execution.assignmentReason = assignmentReason;
  await tx.flush();
  await takeSlot(tx, execution, agent);
}

/**
 * Creates the Execution (QUEUED, first event in its log; RUNNING at once with a free slot) and
 * starts `agentExecution` (workflow id `execution-<id>`). If Temporal refuses the start, the row
 * is marked FAILED rather than left QUEUED forever.
 *
 * The workflow starts while the row is being written, not after its commit: the start's round
 * trip to Temporal overlaps the transaction's. The transaction holds the run's recording lock
 * (row-locks.ts) from before the start until it ends, and the workflow's first activity, not
 * finding the row, waits on that lock and reads again: it never acts on a run that is not
 * committed, nor sends an event ahead of the run's first ones (their notices go at the commit).
 * A transaction that rolls back after the start leaves a workflow whose activity finds no row
 * and ends it, having called no host.
 */
export async function startExecution(deps: RunDeps, actor: Actor, input: StartInput): Promise<Execution> {
  const em = deps.orm.em;
  const executionId = randomUUID();
  /** The start, settled: what Temporal refused it with, if it did. */
  let starting: Promise<unknown> | undefined;
  const execution = await em.transactional(async (tx) => {
    const agent = await lockAgent(tx, input.agent.id);
    assertRunnable(agent);
    const slotTaken = await slotForNewRun(tx, agent, executionId);
    starting = startAgentExecution(deps.temporal, {
      executionId,
      organizationId: actor.organizationId,
      agentId: agent.id,
      serverId: input.agent.server.id,
      taskId: input.taskId,
      slotTaken,
    }).then(
      () => undefined,
      (error: unknown) => error ?? new Error('the start was refused'),
    );
    const created = await recordExecution(tx, actor, { ...input, agent, executionId });
    if (slotTaken) await occupySlot(tx, created, agent);
    return created;
  });
  const refused = await starting;
  if (refused) {
    deps.logger.error({ err: refused, executionId }, 'could not start agentExecution');
    // Nothing will run it: end it as FAILED and give its slot back. A run queued behind it
    // finds the slot on its workflow's next re-check.
    await finishExecution(em.fork(), executionId, {
      status: 'FAILED',
      error: 'the run could not be started (Temporal unavailable)',
    });
    throw AppError.temporalUnavailable('The run could not be started; try again', { executionId });
  }
  return execution;
}
