import type { EntityManager } from '@mikro-orm/postgresql';
import { WorkflowNotFoundError } from '@temporalio/client';
import { SLOT_HOLDING_STATUSES, type Execution } from '../../entities';
import { publishCancelStep } from '../../lib/cancel-steps';
import { CONTROL_CHANNEL, type CancelCommand } from './control-channel';
import type { Actor } from '../actor';
import { audit } from '../audit';
import { AppError } from '../errors';
import { executionHandle, wakeQueuedRuns, type TemporalAccess } from '../temporal';
import { isFinal } from './execution-status';
import { finishExecution } from './finish-execution';
import type { RunDeps } from './run-deps';

export async function publishCancel(em: EntityManager, executionId: string): Promise<void> {
  await publishCancels(em, [executionId]);
}

/** The fast path for several runs in one round trip (a task's cancel-all). */
export async function publishCancels(em: EntityManager, executionIds: string[]): Promise<void> {
  if (executionIds.length === 0) return;
  const commands = executionIds.map((executionId): string => JSON.stringify({ type: 'cancel', executionId } satisfies CancelCommand));
  for (const executionId of executionIds) publishCancelStep({ step: 'cancel published', executionId });
  await em
    .getConnection()
    .execute('select pg_notify(?, c) from jsonb_array_elements_text(?::jsonb) c', [CONTROL_CHANNEL, JSON.stringify(commands)]);
}

/**
 * Asks for a queued or running execution to stop: audited first, then the fast path (when it
 * runs somewhere), then Temporal's cancel. The workflow records CANCELLED. A finished run
 * answers 409 `already_finished`.
 */
export async function cancelExecution(deps: Pick<RunDeps, 'orm' | 'temporal'>, actor: Actor, execution: Execution): Promise<void> {
  if (isFinal(execution.status)) throw AppError.conflict('already_finished', `The execution is already ${execution.status}`);
  const em = deps.orm.em.fork();
  audit(em, actor, {
    action: 'execution.cancel',
    resourceType: 'execution',
    resourceId: execution.id,
    changes: { status: execution.status },
  });
  await em.flush();
  // The fast path first (aborts the MCP call in whichever worker runs it), then the durable one.
  if (SLOT_HOLDING_STATUSES.includes(execution.status)) await publishCancel(em, execution.id);
  const owner = runOwner(deps.temporal, execution);
  // Temporal takes a cancel of a closed workflow without a word: whether it runs is asked after.
  const closed = await owner.cancel().then(
    async () => (await owner.describe()).status.name !== 'RUNNING',
    (error: unknown) => {
      if (error instanceof WorkflowNotFoundError) return true;
      throw error;
    },
  );
  if (closed) await endWithoutWorkflow(deps, execution.id);
}

/** What a cancel records when the run's workflow is closed already, or unknown to Temporal. */
export const CANCELLED_WITHOUT_WORKFLOW = 'cancelled by request (its Temporal workflow had already closed or no longer exists)';

/**
 * A live run whose workflow is closed (terminated, and not reconciled yet) or unknown to
 * Temporal (past the namespace's retention, or never started): nothing would record the cancel,
 * so it ends here as its workflow's end would have, and the queued runs that get its slot are
 * woken. A run that ended meanwhile is left as it ended.
 */
async function endWithoutWorkflow(deps: Pick<RunDeps, 'orm' | 'temporal'>, executionId: string): Promise<void> {
  const next = await finishExecution(deps.orm.em.fork(), executionId, { status: 'CANCELLED', error: CANCELLED_WITHOUT_WORKFLOW });
  await wakeQueuedRuns(deps.temporal, next);
}

/**
 * The workflow a cancel goes to: a task's run belongs to its occurrence's `taskRun` (which then
 * cancels its child run, does not retry, and stops waiting if it was waiting its turn); a plain
 * run is its own `agentExecution`.
 */
export function runOwner(temporal: TemporalAccess, execution: Execution) {
  return execution.taskRunWorkflowId
    ? temporal.client.workflow.getHandle(execution.taskRunWorkflowId)
    : executionHandle(temporal, execution.id);
}
