import type { EntityManager } from '@mikro-orm/postgresql';
import { Execution, ExecutionStatus, FINAL_EXECUTION_STATUSES } from '../../entities';
import type { AgentExecutionResult } from '../../workflows/contracts/agent-execution';
import { appendEvent, type ExecutionRef } from './execution-log';

/**
 * An execution's status transitions. Each one writes its `status` event, so the log and the
 * row never disagree about where a run is.
 */

export function isFinal(status: ExecutionStatus): boolean {
  return FINAL_EXECUTION_STATUSES.includes(status);
}

export function executionRef(execution: Execution): ExecutionRef {
  return { id: execution.id, organizationId: execution.organization.id, agentId: execution.agent?.id ?? '', taskId: execution.task?.id };
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
 */
export async function markFinished(em: EntityManager, execution: Execution, outcome: AgentExecutionResult): Promise<void> {
  if (isFinal(execution.status)) return;
  const finish = async (tx: EntityManager) => {
    const now = new Date();
    execution.status = ExecutionStatus[outcome.status];
    execution.error = outcome.error;
    execution.completedAt = now;
    execution.durationMs = execution.startedAt ? now.getTime() - execution.startedAt.getTime() : 0;
    await tx.flush();
    // A zombie attempt may still be appending: a taken seq costs a retry of the event alone
    // (appendEvent, in a savepoint).
    await appendEvent(tx, executionRef(execution), execution.attempt, 'status', {
      status: outcome.status,
      ...(outcome.error ? { data: { error: outcome.error } } : {}),
    });
  };
  if (em.isInTransaction()) return finish(em);
  const before = { status: execution.status, error: execution.error, completedAt: execution.completedAt, durationMs: execution.durationMs };
  try {
    await em.transactional(finish);
  } catch (error) {
    // Rolled back: the entity says what the database still holds.
    Object.assign(execution, before);
    throw error;
  }
}
