import type { EntityManager } from '@mikro-orm/postgresql';
import { Execution } from '../../../entities';
import { pendingInputOf } from '../../../domain/runs/inputs';
import { readProgress } from '../../../domain/runs/progress';
import type { RunDeps } from '../../../domain/runs/run-deps';
import { presentChild, presentExecution, presentPendingInput } from './executions.presenters';

/**
 * One run as GET /api/executions/:id and the MCP tool `get_execution` show it: output, live
 * progress, the question it waits on, and the runs it delegated (children, oldest first).
 */
export async function executionDetail(deps: Pick<RunDeps, 'orm' | 'temporal'>, em: EntityManager, execution: Execution) {
  const [progress, pending, children] = await Promise.all([
    readProgress(deps, execution),
    pendingInputOf(em, execution),
    em.find(
      Execution,
      { parentExecution: execution.id, organization: execution.organization.id },
      { populate: ['agent'], orderBy: { createdAt: 'asc', id: 'asc' } },
    ),
  ]);
  return {
    ...presentExecution(execution, true),
    progress,
    pendingInput: pending ? presentPendingInput(pending) : null,
    children: children.map(presentChild),
  };
}
