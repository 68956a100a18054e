import type { EntityManager } from '@mikro-orm/postgresql';
import { Execution, ExecutionStatus } from '../../../entities';
import { pendingInputsOf } from '../../../domain/runs/inputs';
import type { AuthContext } from '../../auth/authenticate';
import { scopedPage } from '../../list';
import type { z } from '../../zod';
import { presentExecution, presentPendingInput } from './executions.presenters';
import type { ListExecutionsQuery } from './executions.schemas';

/** A page of the executions `auth` may read, filtered as GET /api/executions and the MCP tool `list_waiting_inputs` filter. */
export function executionPage(em: EntityManager, auth: AuthContext, query: z.output<typeof ListExecutionsQuery>) {
  const filters: Record<string, unknown>[] = [];
  if (query.agentId) filters.push({ agent: query.agentId });
  if (query.taskId) filters.push({ task: query.taskId });
  if (query.status) filters.push({ status: query.status });
  if (query.from) filters.push({ createdAt: { $gte: new Date(query.from) } });
  if (query.to) filters.push({ createdAt: { $lt: new Date(query.to) } });
  return scopedPage(em, Execution, auth, 'Execution', query, filters, (e: Execution) => presentExecution(e));
}

/**
 * The runs waiting for a person's answer (GET /api/executions?status=WAITING_INPUT), each with
 * its question as GET /api/executions/:id shows it (`pendingInput`, null for the moment between
 * a run's status and its question, or an answer and its status).
 */
export async function waitingInputPage(
  em: EntityManager,
  auth: AuthContext,
  query: Omit<z.output<typeof ListExecutionsQuery>, 'status' | 'from' | 'to'>,
) {
  const page = await executionPage(em, auth, { ...query, status: ExecutionStatus.WAITING_INPUT });
  const pending = await pendingInputsOf(
    em,
    page.items.map((e) => e.id),
  );
  return {
    items: page.items.map((e) => {
      const input = pending.get(e.id);
      return { ...e, pendingInput: input ? presentPendingInput(input) : null };
    }),
    nextCursor: page.nextCursor,
  };
}
