import type { EntityManager } from '@mikro-orm/postgresql';
import { LIVE_EXECUTION_STATUSES } from '../../entities';
import type { AgentExecutionResult } from '../../workflows/contracts/agent-execution';
import { recordAudit } from '../audit';
import { finishExecution } from './finish-execution';
import { cancelOpenInputs } from './inputs';
import { lockExecution } from './row-locks';

/**
 * How a run's workflow closed without running its own end; `lost`: Temporal does not know it at
 * all (its namespace was reset or lost, or the run's row outlived the namespace's retention).
 */
export type OrphanedBy = 'terminated' | 'timed-out' | 'lost';

/** The final state of a run whose workflow closed as `by`: the error names Temporal, so whoever reads the run knows where to look. */
export function orphanedRunOutcome(
  by: OrphanedBy,
  workflowId: string,
  reason?: string,
): AgentExecutionResult & { status: 'CANCELLED' | 'TIMED_OUT' | 'FAILED' } {
  switch (by) {
    case 'terminated':
      return { status: 'CANCELLED', error: `its Temporal workflow ${workflowId} was terminated${reason ? ` (${reason})` : ''}` };
    case 'timed-out':
      return { status: 'TIMED_OUT', error: `its Temporal workflow ${workflowId} timed out (workflow execution timeout)` };
    case 'lost':
      return {
        status: 'FAILED',
        error: `its Temporal workflow ${workflowId} is not known to Temporal (a namespace reset or lost, or past its retention): nothing runs it`,
      };
  }
}

/**
 * Ends a run whose workflow is closed but whose row is still live (QUEUED, RUNNING,
 * WAITING_INPUT), as the workflow's end would have: its open question closed, its final status
 * and event (with its parent's `delegation` event), its slot freed, and an audit row, in one
 * transaction under the run's lock, so of several reconciles at once only one ends it and
 * audits it. Returns whether this call ended it, and the queued runs that may start now (for
 * the caller to wake, as the workflow does).
 */
export async function endOrphanedRun(
  em: EntityManager,
  executionId: string,
  by: OrphanedBy,
  workflowId: string,
  reason?: string,
): Promise<{ ended: boolean; next: string[] }> {
  return em.transactional(async (tx) => {
    const execution = await lockExecution(tx, { id: executionId });
    if (!execution || !LIVE_EXECUTION_STATUSES.includes(execution.status)) return { ended: false, next: [] };
    const from = execution.status;
    // Before the run's events (the lock order of row-locks.ts); finishExecution's own call then finds none open.
    await cancelOpenInputs(tx, executionId);
    const outcome = orphanedRunOutcome(by, workflowId, reason);
    const next = await finishExecution(tx, executionId, outcome);
    recordAudit(tx, {
      organizationId: execution.organization.id,
      action: 'execution.reconciled',
      resourceType: 'execution',
      resourceId: executionId,
      changes: { status: { from, to: outcome.status }, workflowId, workflow: by, ...(reason ? { reason } : {}) },
    });
    await tx.flush();
    return { ended: true, next };
  });
}
