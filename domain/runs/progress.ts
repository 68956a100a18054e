import { FINAL_EXECUTION_STATUSES, type Execution } from '../../entities';
import type { ProgressSnapshot } from '../../workflows/agent-execution.workflow';
import { queryProgress } from '../temporal';
import { lastSeq } from './execution-log';
import type { RunDeps } from './start-execution';

/** The workflow's `progress` query, or what the database knows when the workflow cannot answer. */
export async function readProgress(deps: Pick<RunDeps, 'orm' | 'temporal'>, execution: Execution): Promise<ProgressSnapshot> {
  if (!FINAL_EXECUTION_STATUSES.includes(execution.status) && execution.workflowId) {
    try {
      return await queryProgress(deps.temporal, execution.id);
    } catch {
      // fall through to the stored state
    }
  }
  return { status: execution.status, todos: execution.todos ?? [], outputTail: (execution.output ?? '').slice(-2000), seq: await lastSeq(deps.orm.em, execution.id) };
}
