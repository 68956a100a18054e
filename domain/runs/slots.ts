import type { EntityManager } from '@mikro-orm/postgresql';
import { Agent, AgentStatus, Execution, ExecutionStatus, SLOT_HOLDING_STATUSES } from '../../entities';
import { setAgentStatus } from './agent-status';
import { markRunning } from './execution-status';
import { RECORDING_LOCK_KEY, awaitRecording, lockAgent, lockExecution } from './row-locks';

/** What the workflow's wait for a slot hears: started, not yet, or never (why). */
export type SlotAnswer = { started: true } | { started: false; rejected?: string };

/**
 * An agent's slots: it runs at most `maxConcurrency` executions at a time; the others wait
 * QUEUED and start in arrival order (`createdAt`, then `id`).
 */

/** The agent statuses that take new runs: a run waiting for an answer does not stop the others. */
export const RUNNABLE_STATUSES: readonly AgentStatus[] = [AgentStatus.ACTIVE, AgentStatus.BUSY, AgentStatus.WAITING_INPUT];

export function isRunnable(status: AgentStatus): boolean {
  return RUNNABLE_STATUSES.includes(status);
}

/**
 * Takes one of the agent's slots for a QUEUED `execution` when there is room for it and for
 * every run queued ahead of it: the execution becomes RUNNING (with its event) and the agent
 * BUSY, in `tx`. The caller holds the agent's lock (`lockAgent`), so two runs never take the
 * last slot together. Used by the API when it creates a run and by the workflow's `acquireSlot`.
 */
export async function takeSlot(tx: EntityManager, execution: Execution, agent: Agent): Promise<boolean> {
  // One statement over the agent's live runs (index agent, status, created_at). A run waiting
  // for an answer keeps its slot: the answer resumes it without queueing again.
  const [counts] = await tx.execute<{ holding: number; ahead: number }[]>(
    `select count(*) filter (where status in (${SLOT_HOLDING_STATUSES.map(() => '?').join(', ')}))::int as holding,
            count(*) filter (where status = ? and (created_at < ? or (created_at = ? and id < ?)))::int as ahead
       from executions where agent_id = ? and status in (${[...SLOT_HOLDING_STATUSES, ExecutionStatus.QUEUED].map(() => '?').join(', ')})`,
    [
      ...SLOT_HOLDING_STATUSES,
      ExecutionStatus.QUEUED,
      execution.createdAt,
      execution.createdAt,
      execution.id,
      agent.id,
      ...SLOT_HOLDING_STATUSES,
      ExecutionStatus.QUEUED,
    ],
  );
  if (counts!.holding + counts!.ahead >= agent.maxConcurrency) return false;
  await occupySlot(tx, execution, agent);
  return true;
}

/** The run takes a slot: RUNNING (with its event) and its agent BUSY, in `tx`, under the agent's lock. */
export async function occupySlot(tx: EntityManager, execution: Execution, agent: Agent): Promise<void> {
  await markRunning(tx, execution);
  await setAgentStatus(tx, agent.id, AgentStatus.BUSY, 'executing', RUNNABLE_STATUSES);
}

/**
 * Whether a run created now, whose row is not written yet, gets one of the agent's slots at once:
 * every live run of the agent holds a slot or was queued before it. The caller holds the agent's
 * lock. The same statement takes the run's recording lock (row-locks.ts), before its workflow starts.
 */
export async function slotForNewRun(tx: EntityManager, agent: Agent, executionId: string): Promise<boolean> {
  const live = [...SLOT_HOLDING_STATUSES, ExecutionStatus.QUEUED];
  const [row] = await tx.execute<{ live: number }[]>(
    `select pg_advisory_xact_lock(${RECORDING_LOCK_KEY})::text as locked,
            (select count(*) from executions where agent_id = ? and status in (${live.map(() => '?').join(', ')}))::int as live`,
    [executionId, agent.id, ...live],
  );
  return row!.live < agent.maxConcurrency;
}

/**
 * A queued run asks for its slot (the workflow's `acquireSlot`): RUNNING when it has one, a
 * refusal when it can never run (gone, already ended, its agent deleted or no longer runnable).
 */
export async function acquireSlot(em: EntityManager, executionId: string): Promise<SlotAnswer> {
  const answer = await trySlot(em, executionId);
  if (answer !== 'missing') return answer;
  // Its workflow may have started before the row committed (start-execution.ts).
  await awaitRecording(em, executionId);
  const again = await trySlot(em, executionId);
  return again === 'missing' ? { started: false, rejected: 'the execution no longer exists' } : again;
}

function trySlot(em: EntityManager, executionId: string): Promise<SlotAnswer | 'missing'> {
  return em.transactional(async (tx): Promise<SlotAnswer | 'missing'> => {
    // The run before its agent (row-locks.ts): a cancel or a TERMINATE_OTHER that ends it meanwhile is seen here, not overwritten.
    const execution = await lockExecution(tx, { id: executionId });
    if (!execution) return 'missing';
    if (execution.status === ExecutionStatus.RUNNING) return { started: true };
    if (execution.status !== ExecutionStatus.QUEUED) return { started: false, rejected: `the execution is already ${execution.status}` };
    if (!execution.agent) return { started: false, rejected: 'the agent was deleted' };
    const agent = await lockAgent(tx, execution.agent.id);
    if (!isRunnable(agent.status)) return { started: false, rejected: `the agent is ${agent.status}, not ACTIVE` };
    return (await takeSlot(tx, execution, agent)) ? { started: true } : { started: false };
  });
}

/**
 * The agent's status after one of its runs changed: BUSY while one runs, WAITING_INPUT when
 * none runs and one waits for an answer, ACTIVE (reason `idle`) when none does either. Only an
 * agent in a runnable status moves (an INACTIVE or ERROR agent keeps its status). Returns how
 * many slots its runs hold.
 */
export async function syncAgentRunStatus(em: EntityManager, agentId: string): Promise<number> {
  const rows = await em.execute<{ status: ExecutionStatus; n: number }[]>(
    `select status, count(*)::int as n from executions where agent_id = ? and status in (?, ?) group by status`,
    [agentId, ...SLOT_HOLDING_STATUSES],
  );
  const count = (status: ExecutionStatus) => rows.find((r) => r.status === status)?.n ?? 0;
  const [running, waiting] = [count(ExecutionStatus.RUNNING), count(ExecutionStatus.WAITING_INPUT)];
  const [to, reason] =
    running > 0
      ? [AgentStatus.BUSY, 'executing']
      : waiting > 0
        ? [AgentStatus.WAITING_INPUT, 'waiting for input']
        : [AgentStatus.ACTIVE, 'idle'];
  await setAgentStatus(em, agentId, to, reason, RUNNABLE_STATUSES);
  return running + waiting;
}

/**
 * Gives a finished run's slot back: the agent follows its remaining runs (`syncAgentRunStatus`).
 * Returns the oldest QUEUED executions that fit in the free slots, for the caller to wake.
 */
export async function releaseSlot(em: EntityManager, agentId: string): Promise<string[]> {
  const agent = await em.findOne(Agent, agentId);
  if (!agent) return [];
  const held = await syncAgentRunStatus(em, agent.id);
  const free = Math.max(0, agent.maxConcurrency - held);
  if (free === 0) return [];
  const next = await em.find(
    Execution,
    { agent, status: ExecutionStatus.QUEUED },
    { orderBy: { createdAt: 'asc', id: 'asc' }, limit: free, fields: ['id'] },
  );
  return next.map((e) => e.id);
}
