import type { Execution } from '../../entities';
import type { ProgressSnapshot } from '../../workflows/contracts/agent-execution';
import { queryProgress } from '../temporal';
import { lastSeq } from './execution-log';
import { isFinal } from './execution-status';
import type { RunDeps } from './run-deps';

/**
 * The workflow's `progress` query, or what the database knows when the workflow cannot answer.
 * The running activity signals its workflow on a growing interval (progress-throttle.ts), so
 * the query's `seq` may lag the log: the log's last seq is the truth for it.
 */
export async function readProgress(deps: Pick<RunDeps, 'orm' | 'temporal'>, execution: Execution): Promise<ProgressSnapshot> {
  const live = !isFinal(execution.status) && execution.workflowId;
  const [snapshot, logged] = await Promise.all([
    // When the workflow cannot answer (finished, no worker), the stored state stands in.
    live ? queryProgress(deps.temporal, execution.id).catch(() => undefined) : undefined,
    lastSeq(deps.orm.em, execution.id),
  ]);
  if (snapshot) return { ...snapshot, seq: Math.max(snapshot.seq, logged) };
  return { status: execution.status, todos: execution.todos ?? [], outputTail: (execution.output ?? '').slice(-2000), seq: logged };
}
