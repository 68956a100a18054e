import type { EntityManager } from '@mikro-orm/postgresql';
import { Task } from '../../../entities';
import { countsOf, runCounts } from '../../../domain/tasks/task-queries';
import { computedRunTimes } from '../../../domain/tasks/task-schedule';
import type { AuthContext } from '../../auth/authenticate';
import { containing, scopedPage } from '../../list';
import type { z } from '../../zod';
import { presentTask } from './tasks.presenters';
import type { ListTasksQuery } from './tasks.schemas';

/** A page of the tasks `auth` may read, filtered and presented as GET /api/tasks and the MCP tool `list_tasks` answer. */
export async function taskPage(em: EntityManager, auth: AuthContext, query: z.output<typeof ListTasksQuery>) {
  const filters: Record<string, unknown>[] = [{ deletedAt: null }];
  if (query.kind) filters.push({ kind: query.kind });
  if (query.executionMode) filters.push({ executionMode: query.executionMode });
  if (query.assignmentMode) filters.push({ assignmentMode: query.assignmentMode });
  if (query.enabled) filters.push({ enabled: query.enabled === 'true' });
  if (query.agentId) filters.push({ agent: query.agentId });
  if (query.text)
    filters.push({ $or: [{ title: { $ilike: containing(query.text) } }, { description: { $ilike: containing(query.text) } }] });
  const page = await scopedPage(em, Task, auth, 'Task', query, filters, (task: Task) => task);
  // The agents (for agentProblem) and the run counts, side by side: both need only the page.
  const [counts] = await Promise.all([
    runCounts(
      em,
      page.items.map((t) => t.id),
    ),
    em.populate(page.items, ['agent']),
  ]);
  return {
    items: page.items.map((task) => presentTask(task, countsOf(counts, task.id), computedRunTimes(task))),
    nextCursor: page.nextCursor,
  };
}
