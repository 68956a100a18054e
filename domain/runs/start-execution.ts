import type { EntityManager } from '@mikro-orm/postgresql';
import { Agent, AgentStatus, Execution, ExecutionStatus, ExecutionTrigger, Task, User } from '../../entities';
import type { Logger } from '../../lib/logger';
import type { Orm } from '../../lib/orm';
import { executionWorkflowId } from '../../workflows/agent-execution.workflow';
import type { Actor } from '../actor';
import { audit } from '../audit';
import { AppError } from '../errors';
import { startAgentExecution, type TemporalAccess } from '../temporal';
import { appendEvent } from './execution-log';
import { executionRef } from './execution-status';
import { finishExecution } from './finish-execution';
import { isRunnable, lockAgent, takeSlot } from './slots';

/** What the run lifecycle needs: the database, the Temporal client and a logger. */
export interface RunDeps {
  orm: Orm;
  temporal: TemporalAccess;
  logger: Logger;
}

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
  // Row, audit entry, first events and their notices commit together. When the agent has a
  // free slot (nobody queued ahead), the run takes it here, sparing the workflow a step;
  // otherwise it stays QUEUED and the workflow waits for a slot. The notices are delivered at
  // commit, before the workflow starts, so no later notice of this run can overtake them.
  const execution = await em.transactional(async (tx) => {
    const agent = await lockAgent(tx, input.agent.id);
    if (!isRunnable(agent.status)) {
      throw AppError.conflict('agent_not_active', `The agent is ${agent.status}; only ACTIVE agents execute${agent.status === AgentStatus.PENDING_VALIDATION ? ' (validate it first)' : ''}`);
    }
    const created = tx.create(Execution, {
      organization: agent.organization,
      agent,
      task: input.taskId ? tx.getReference(Task, input.taskId) : undefined,
      trigger: input.trigger,
      triggeredBy: actor.userId ? tx.getReference(User, actor.userId) : undefined,
      prompt: input.prompt,
      context: input.context,
      status: ExecutionStatus.QUEUED,
    });
    created.workflowId = executionWorkflowId(created.id);
    audit(tx, actor, { action: 'agent.execute', resourceType: 'execution', resourceId: created.id, changes: { agentId: agent.id, trigger: input.trigger } });
    await tx.flush();
    await appendEvent(tx, executionRef(created), created.attempt, 'status', { status: ExecutionStatus.QUEUED });
    await takeSlot(tx, created, agent);
    return created;
  });
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
    // Nothing will run it: end it as FAILED and give its slot back. A run queued behind it
    // finds the slot on its workflow's next re-check.
    await finishExecution(em.fork() as EntityManager, execution.id, { status: 'FAILED', error: 'the run could not be started (Temporal unavailable)' });
    throw new AppError(503, 'temporal_unavailable', 'The run could not be started; try again', { executionId: execution.id });
  }
  return execution;
}
