import type { EntityManager } from '@mikro-orm/postgresql';
import { LockMode } from '@mikro-orm/core';
import { Agent, AgentStatus, Execution, ExecutionStatus, ExecutionTrigger, User } from '../../entities';
import type { Logger } from '../../lib/logger';
import type { Orm } from '../../lib/orm';
import { executionWorkflowId } from '../../workflows/agent-execution.workflow';
import type { Actor } from '../actor';
import { audit } from '../audit';
import { AppError } from '../errors';
import { publishEvent } from '../events';
import { startAgentExecution, type TemporalAccess } from '../temporal';
import { setAgentStatus } from './agent-status';
import { executionNotice, insertExecutionEvent } from './execution-log';

/** What the run lifecycle needs: the database, the Temporal client and a logger. */
export interface RunDeps {
  orm: Orm;
  temporal: TemporalAccess;
  logger: Logger;
}

const RUNNABLE: readonly AgentStatus[] = [AgentStatus.ACTIVE, AgentStatus.BUSY];

export interface StartInput {
  agent: Agent;
  prompt: string;
  context?: Record<string, unknown>;
  trigger: ExecutionTrigger;
  taskId?: string;
}

/**
 * Creates the Execution (QUEUED, first event in its log) and starts `agentExecution`
 * (workflow id `execution-<id>`). If Temporal refuses the start, the row is marked FAILED
 * rather than left QUEUED forever.
 */
export async function startExecution(deps: RunDeps, actor: Actor, input: StartInput): Promise<Execution> {
  const em = deps.orm.em as EntityManager;
  const ref = { organizationId: actor.organizationId, agentId: input.agent.id, taskId: input.taskId };
  // Row, audit entry and first events commit together; the notices go out after. When the
  // agent has a free slot (nobody queued ahead), the run takes it here, sparing the workflow a
  // step; otherwise it stays QUEUED and the workflow waits for a slot.
  const { execution, events, busy } = await em.transactional(async (tx) => {
    const agent = await tx.findOneOrFail(Agent, input.agent.id, { lockMode: LockMode.PESSIMISTIC_WRITE });
    if (!RUNNABLE.includes(agent.status)) {
      throw AppError.conflict('agent_not_active', `The agent is ${agent.status}; only ACTIVE agents execute${agent.status === AgentStatus.PENDING_VALIDATION ? ' (validate it first)' : ''}`);
    }
    const taken = await tx.count(Execution, { agent, status: { $in: [ExecutionStatus.RUNNING, ExecutionStatus.QUEUED] } });
    const startNow = taken < agent.maxConcurrency;
    const created = tx.create(Execution, {
      organization: agent.organization,
      agent,
      trigger: input.trigger,
      triggeredBy: actor.userId ? tx.getReference(User, actor.userId) : undefined,
      prompt: input.prompt,
      context: input.context,
      status: startNow ? ExecutionStatus.RUNNING : ExecutionStatus.QUEUED,
      startedAt: startNow ? new Date() : undefined,
    });
    created.workflowId = executionWorkflowId(created.id);
    const previous = agent.status;
    if (startNow) agent.status = AgentStatus.BUSY;
    audit(tx, actor, { action: 'agent.execute', resourceType: 'execution', resourceId: created.id, changes: { agentId: agent.id, trigger: input.trigger } });
    await tx.flush();
    const written = [await insertExecutionEvent(tx, { id: created.id, ...ref }, 1, 'status', { status: ExecutionStatus.QUEUED })];
    if (startNow) written.push(await insertExecutionEvent(tx, { id: created.id, ...ref }, 1, 'status', { status: ExecutionStatus.RUNNING }));
    return { execution: created, events: written, busy: startNow && previous !== AgentStatus.BUSY ? previous : undefined };
  });
  // Announced before the workflow starts, so no later notice of this run can overtake them.
  for (const event of events) await publishEvent(em, executionNotice({ id: execution.id, ...ref }, event));
  if (busy) await publishEvent(em, { type: 'agent:status', organizationId: ref.organizationId, agentId: ref.agentId, status: AgentStatus.BUSY, previousStatus: busy, reason: 'executing', at: new Date().toISOString() });
  try {
    await startAgentExecution(deps.temporal, {
      executionId: execution.id,
      organizationId: actor.organizationId,
      agentId: input.agent.id,
      serverId: input.agent.server.id,
      taskId: input.taskId,
      slotTaken: execution.status === ExecutionStatus.RUNNING,
    });
  } catch (error) {
    deps.logger.error({ err: error, executionId: execution.id }, 'could not start agentExecution');
    // Nothing will run it: end it as FAILED and give its slot back.
    const reason = 'the run could not be started (Temporal unavailable)';
    await em.fork().nativeUpdate(Execution, { id: execution.id }, { status: ExecutionStatus.FAILED, error: reason, completedAt: new Date() });
    const fork = em.fork() as EntityManager;
    const failed = await insertExecutionEvent(fork, { id: execution.id, ...ref }, 1, 'status', { status: ExecutionStatus.FAILED, data: { error: reason } });
    await publishEvent(fork, executionNotice({ id: execution.id, ...ref }, failed));
    const running = await em.fork().count(Execution, { agent: input.agent.id, status: ExecutionStatus.RUNNING });
    if (running === 0) await setAgentStatus(em.fork() as EntityManager, input.agent.id, AgentStatus.ACTIVE, 'idle', [AgentStatus.BUSY]);
    throw new AppError(503, 'temporal_unavailable', 'The run could not be started; try again', { executionId: execution.id });
  }
  return execution;
}
