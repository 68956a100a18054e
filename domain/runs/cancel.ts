import type { EntityManager } from '@mikro-orm/postgresql';
import { SLOT_HOLDING_STATUSES, type Execution } from '../../entities';
import { publishCancelStep } from '../../lib/cancel-steps';
import type { Actor } from '../actor';
import { audit } from '../audit';
import { AppError } from '../errors';
import { executionHandle, type TemporalAccess } from '../temporal';
import { isFinal } from './execution-status';
import type { RunDeps } from './run-deps';

/**
 * Fast path for cancellation. The durable path is Temporal cancellation, which reaches a
 * running activity on its next heartbeat; this NOTIFY reaches every worker at once, and the one
 * running the execution aborts its MCP call immediately (the SDK then sends
 * notifications/cancelled to the host).
 */
export const CONTROL_CHANNEL = 'fleet_control';

export interface CancelCommand {
  type: 'cancel';
  executionId: string;
}

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
  await runOwner(deps.temporal, execution).cancel();
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
