import type { EntityManager } from '@mikro-orm/postgresql';
import { Execution, ExecutionStatus, FINAL_EXECUTION_STATUSES } from '../../entities';
import type { AgentExecutionResult } from '../../workflows/contracts/agent-execution';
import { retryWhileDatabaseUnavailable } from '../../lib/database-unavailable';
import { appendEvent, type ExecutionRef } from './execution-log';

/**
 * An execution's status transitions. Each one writes its `status` event, so the log and the
 * row never disagree about where a run is.
 */

export function isFinal(status: ExecutionStatus): boolean {
  return FINAL_EXECUTION_STATUSES.includes(status);
}

export function executionRef(execution: Execution): ExecutionRef {
  return {
    id: execution.id,
    organizationId: execution.organization.id,
    agentId: execution.agent?.id ?? '',
    taskId: execution.task?.id,
    ...(execution.parentExecution ? { parentExecutionId: execution.parentExecution.id } : {}),
  };
}

/** QUEUED → RUNNING, in the transaction that took its slot. */
export async function markRunning(tx: EntityManager, execution: Execution): Promise<void> {
  execution.status = ExecutionStatus.RUNNING;
  execution.startedAt = new Date();
  await tx.flush();
  await appendEvent(tx, executionRef(execution), execution.attempt, 'status', { status: ExecutionStatus.RUNNING });
}

/**
 * The run's final status, error, end time and duration, then the final `status` event (with
 * `data.error` when there is one), in one transaction: the event's notice and its webhook
 * outbox rows (domain/events.ts) commit with the status or not at all. A retry after a failure
 * between the two would otherwise find the run already final and never write its event nor
 * its alert. Does nothing to a run that already ended.
 *
 * On its own (not in a caller's transaction) it also waits while PostgreSQL is unavailable, as
 * the run's other events do (appendEvent); a try whose commit went through but whose answer was
 * lost finds the row final under its lock and writes nothing twice.
 */
export async function markFinished(em: EntityManager, execution: Execution, outcome: AgentExecutionResult): Promise<void> {
  if (isFinal(execution.status)) return;
  const now = new Date();
  const end = {
    status: ExecutionStatus[outcome.status],
    error: outcome.error,
    completedAt: now,
    durationMs: execution.startedAt ? now.getTime() - execution.startedAt.getTime() : 0,
  };
  const event = () => ({ status: outcome.status, ...(outcome.error ? { data: { error: outcome.error } } : {}) });
  if (em.isInTransaction()) {
    Object.assign(execution, end);
    await em.flush();
    // A zombie attempt may still be appending: a taken seq costs a retry of the event alone
    // (appendEvent takes the next seq, the transaction goes on).
    await appendEvent(em, executionRef(execution), execution.attempt, 'status', event());
    await tellParentLog(em, execution, outcome);
    return;
  }
  // Written by statement, not by the entity: a rolled-back try must leave the entity as the
  // database has it, so the next try writes the whole again.
  const finished = await retryWhileDatabaseUnavailable(() =>
    em.transactional(async (tx) => {
      const [row] = await tx.execute<{ status: ExecutionStatus }[]>('select status from executions where id = ? for update', [
        execution.id,
      ]);
      if (!row || isFinal(row.status)) return false;
      await tx.nativeUpdate(Execution, { id: execution.id }, end);
      await appendEvent(tx, executionRef(execution), execution.attempt, 'status', event());
      await tellParentLog(tx, execution, outcome);
      return true;
    }),
  );
  if (finished) Object.assign(execution, end);
}

/** A delegated run's end, as a `delegation` event in its parent's log, in the transaction that ends it. */
async function tellParentLog(tx: EntityManager, execution: Execution, outcome: AgentExecutionResult): Promise<void> {
  const parentId = execution.parentExecution?.id;
  if (!parentId) return;
  const [parent] = await tx.execute<{ agent_id: string | null; attempt: number }[]>(
    'select agent_id, attempt from executions where id = ?',
    [parentId],
  );
  if (!parent) return;
  await appendEvent(
    tx,
    { id: parentId, organizationId: execution.organization.id, agentId: parent.agent_id ?? '' },
    parent.attempt,
    'delegation',
    {
      data: {
        event: 'child_ended',
        childExecutionId: execution.id,
        agentId: execution.agent?.id ?? null,
        status: outcome.status,
        ...(outcome.error ? { error: outcome.error } : {}),
      },
    },
  );
}
