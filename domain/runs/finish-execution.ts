import type { EntityManager } from '@mikro-orm/postgresql';
import { Execution } from '../../entities';
import type { AgentExecutionResult } from '../../workflows/contracts/agent-execution';
import { markFinished } from './execution-status';
import { cancelOpenInputs } from './inputs';
import { releaseSlot } from './slots';

/**
 * Ends a run: records its final state (idempotent), closes its open questions, frees its slot, and returns the queued
 * executions that may start now, oldest first, for the caller to wake.
 */
export async function finishExecution(em: EntityManager, executionId: string, outcome: AgentExecutionResult): Promise<string[]> {
  const execution = await em.findOne(Execution, executionId);
  if (!execution) return [];
  await markFinished(em, execution, outcome);
  // A question nobody can answer any more leaves the inbox.
  await cancelOpenInputs(em, executionId);
  if (!execution.agent) return [];
  return releaseSlot(em, execution.agent.id);
}
