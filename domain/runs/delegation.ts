import type { EntityManager } from '@mikro-orm/postgresql';
import { Agent, Execution, ExecutionTrigger, LIVE_EXECUTION_STATUSES } from '../../entities';
import { MAX_DELEGATION_DEPTH, type DelegatedRun } from '../../workflows/contracts/agent-execution';
import type { Actor } from '../actor';
import { isDirectSubordinate } from '../agents/agent-rules';
import { AppError } from '../errors';
import { searchAttributes } from '../temporal';
import { appendEvent } from './execution-log';
import { executionRef, isFinal } from './execution-status';
import { lockExecution } from './row-locks';
import { createExecution } from './start-execution';

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
    const parent = await lockExecution(tx, { id: input.parentExecutionId }, ['agent']);
    if (!parent) throw new DelegationRefused('parent_not_found', 'The delegating run does not exist');
    const existing = await tx.findOne(
      Execution,
      { parentExecution: parent.id, delegationKey: input.delegationKey },
      { populate: ['agent'] },
    );
    if (existing?.agent) return delegatedRun(existing, existing.agent);
    if (isFinal(parent.status)) throw new DelegationRefused('run_ended', `The delegating run has ended (${parent.status})`);
    const supervisor = parent.agent;
    const agent = await tx.findOne(Agent, { id: input.agentId, organization: parent.organization.id });
    if (!supervisor || !agent || !isDirectSubordinate(agent, supervisor))
      throw new DelegationRefused('not_subordinate', 'That agent is not a direct subordinate of the delegating agent');
    const depth = parent.depth + 1;
    if (depth > MAX_DELEGATION_DEPTH)
      throw new DelegationRefused(
        'depth_limit',
        `Delegation depth limit: this run is already ${parent.depth} delegations deep (at most ${MAX_DELEGATION_DEPTH})`,
      );
    const live = await tx.count(Execution, { parentExecution: parent.id, status: { $in: [...LIVE_EXECUTION_STATUSES] } });
    if (live >= input.maxChildren)
      throw new DelegationRefused(
        'fan_out_limit',
        `Delegation fan-out limit: this run already has ${live} children running (at most ${input.maxChildren}, DELEGATION_MAX_CHILDREN)`,
      );
    const actor: Actor = { organizationId: parent.organization.id, via: 'workflow' };
    const child = await createExecution(tx, actor, {
      executionId: input.childExecutionId,
      agent,
      prompt: input.prompt,
      context: input.context,
      trigger: ExecutionTrigger.DELEGATION,
      parentExecutionId: parent.id,
      depth,
      delegationKey: input.delegationKey,
    });
    await appendEvent(tx, executionRef(parent), parent.attempt, 'delegation', {
      data: { event: 'child_started', childExecutionId: child.id, agentId: agent.id, agentName: agent.name },
    });
    await appendEvent(tx, executionRef(child), child.attempt, 'delegation', {
      data: { event: 'delegated', parentExecutionId: parent.id, parentAgentId: supervisor.id, parentAgentName: supervisor.name, depth },
    });
    return delegatedRun(child, agent);
  });
}
