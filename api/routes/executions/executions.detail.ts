import type { EntityManager } from '@mikro-orm/postgresql';
import type { Execution } from '../../../entities';
import { pendingInputOf } from '../../../domain/runs/inputs';
import { readProgress } from '../../../domain/runs/progress';
import type { RunDeps } from '../../../domain/runs/run-deps';
import { presentExecution, presentPendingInput } from './executions.presenters';

/** One run as GET /api/executions/:id and the MCP tool `get_execution` show it: output, live progress, the question it waits on. */
export async function executionDetail(deps: Pick<RunDeps, 'orm' | 'temporal'>, em: EntityManager, execution: Execution) {
  const [progress, pending] = await Promise.all([readProgress(deps, execution), pendingInputOf(em, execution)]);
  return { ...presentExecution(execution, true), progress, pendingInput: pending ? presentPendingInput(pending) : null };
}
