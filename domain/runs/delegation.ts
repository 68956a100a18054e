import type { EntityManager } from '@mikro-orm/postgresql';
import { Agent, Execution, ExecutionTrigger, LIVE_EXECUTION_STATUSES, type ExecutionStatus } from '../../entities';
import { MAX_DELEGATION_DEPTH, type DelegatedRun } from '../../workflows/contracts/agent-execution';
import type { Actor } from '../actor';
import { isDirectSubordinate } from '../agents/agent-rules';
import { AppError } from '../errors';
import { searchAttributes } from '../temporal';
import { appendEvent, type ExecutionRef } from './execution-log';
import { executionRef, isFinal } from './execution-status';
import { createOnLockedAgent } from './start-execution';

/** A delegation the rules refuse: the message is the reason, shown to the delegating agent. */
export class DelegationRefused extends AppError {
  constructor(code: string, message: string) {
    super(409, code, message);
    this.name = 'DelegationRefused';
  }
}

export interface DelegationInput {
  parentExecutionId: string;
  /** Chosen by the parent's workflow (deterministic), so a retried activity writes the same row. */
  childExecutionId: string;
  /** The parent's Update id: one child per Update, whatever is retried or replayed. */
  delegationKey: string;
  agentId: string;
  prompt: string;
  context?: Record<string, unknown>;
  maxChildren: number;
}

/** The delegating run's row, as recordDelegatedRun reads it under its lock. */
interface ParentRow {
  organization_id: string;
  agent_id: string | null;
  task_id: string | null;
  status: ExecutionStatus;
  depth: number;
  attempt: number;
  agent_name: string | null;
}

function delegatedRun(child: Execution, agent: Agent): DelegatedRun {
  return {
    executionId: child.id,
    slotTaken: child.status === 'RUNNING',
    searchAttributes: searchAttributes({
      organizationId: child.organization.id,
      agentId: agent.id,
      serverId: agent.server.id,
      kind: 'agent-execution',
    }),
  };
}

/**
 * Records a delegated run (the parent workflow's local activity): the checks that need the
 * database, then the child row, QUEUED or RUNNING like any run, with a `delegation` event in
 * both logs, in one transaction under the parent's row lock (so parallel delegations of one
 * run count each other). Idempotent: the child of this Update, once written, is answered again.
 *
 * The rules, each refused with its reason: the parent still runs; the agent is a direct
 * subordinate of the parent's agent, in its organisation (agent-rules.ts); the child is at most
 * MAX_DELEGATION_DEPTH deep; the parent has fewer than `maxChildren` children not yet ended.
 */
export async function recordDelegatedRun(em: EntityManager, input: DelegationInput): Promise<DelegatedRun> {
  return em.transactional(async (tx) => {
    // The parent's row, locked, with its agent's name, in one statement (row-locks.ts: the run before its agent).
    const [parent] = await tx.execute<ParentRow[]>(
      `select e.organization_id, e.agent_id, e.task_id, e.status, e.depth, e.attempt, a.name as agent_name
         from executions e left join agents a on a.id = e.agent_id
        where e.id = ? for no key update of e`,
      [input.parentExecutionId],
    );
    if (!parent) throw new DelegationRefused('parent_not_found', 'The delegating run does not exist');
    // Read after the lock, so a call of the same Update that held it is seen.
    const [existing] = await tx.execute<{ id: string }[]>(
      'select id from executions where parent_execution_id = ? and delegation_key = ?',
      [input.parentExecutionId, input.delegationKey],
    );
    if (existing) {
      const child = await tx.findOneOrFail(Execution, existing.id, { populate: ['agent'] });
      if (child.agent) return delegatedRun(child, child.agent);
    }
    if (isFinal(parent.status)) throw new DelegationRefused('run_ended', `The delegating run has ended (${parent.status})`);
    const supervisor = parent.agent_id ? { id: parent.agent_id, organization: { id: parent.organization_id } } : undefined;
    // The subordinate's row, locked for its slot count and read under the lock, in one statement;
    // only one of the parent's organisation is even looked at.
    const [locked] = await tx.execute<Record<string, unknown>[]>(
      'select * from agents where id = ? and organization_id = ? for no key update',
      [input.agentId, parent.organization_id],
    );
    const agent = locked ? tx.map(Agent, locked) : undefined;
    if (!supervisor || !agent || !isDirectSubordinate(agent, supervisor))
      throw new DelegationRefused('not_subordinate', 'That agent is not a direct subordinate of the delegating agent');
    const depth = parent.depth + 1;
    if (depth > MAX_DELEGATION_DEPTH)
      throw new DelegationRefused(
        'depth_limit',
        `Delegation depth limit: this run is already ${parent.depth} delegations deep (at most ${MAX_DELEGATION_DEPTH})`,
      );
    const live = await tx.count(Execution, { parentExecution: input.parentExecutionId, status: { $in: [...LIVE_EXECUTION_STATUSES] } });
    if (live >= input.maxChildren)
      throw new DelegationRefused(
        'fan_out_limit',
        `Delegation fan-out limit: this run already has ${live} children running (at most ${input.maxChildren}, DELEGATION_MAX_CHILDREN)`,
      );
    const actor: Actor = { organizationId: parent.organization_id, via: 'workflow' };
    const child = await createOnLockedAgent(tx, actor, {
      executionId: input.childExecutionId,
      agent,
      prompt: input.prompt,
      context: input.context,
      trigger: ExecutionTrigger.DELEGATION,
      parentExecutionId: input.parentExecutionId,
      depth,
      delegationKey: input.delegationKey,
    });
    const parentRef: ExecutionRef = {
      id: input.parentExecutionId,
      organizationId: parent.organization_id,
      agentId: supervisor.id,
      ...(parent.task_id ? { taskId: parent.task_id } : {}),
    };
    await appendEvent(tx, parentRef, parent.attempt, 'delegation', {
      data: { event: 'child_started', childExecutionId: child.id, agentId: agent.id, agentName: agent.name },
    });
    await appendEvent(tx, executionRef(child), child.attempt, 'delegation', {
      data: {
        event: 'delegated',
        parentExecutionId: input.parentExecutionId,
        parentAgentId: supervisor.id,
        parentAgentName: parent.agent_name,
        depth,
      },
    });
    return delegatedRun(child, agent);
  });
}
