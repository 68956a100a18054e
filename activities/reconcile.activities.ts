import { WorkflowNotFoundError } from '@temporalio/client';
import { Execution, LIVE_EXECUTION_STATUSES } from '../entities';
import { endOrphanedRun, orphanedRunOutcome, type OrphanedBy } from '../domain/runs/orphaned-run';
import { AGENT_EXECUTION_WORKFLOW, executionIdOfWorkflow, executionWorkflowId } from '../workflows/contracts/agent-execution';
import { wakeQueuedRuns } from '../domain/temporal';
import type { ReconciledRun, RunReconcileInput, RunReconcileSummary } from '../workflows/contracts/run-reconcile';
import type { ActivityDeps } from './deps';
import { createInputActivities } from './inputs.activities';

/** Runs live since before the look-back window described per sweep (reconcileClosedRuns). */
export const OLDER_RUNS_PER_SWEEP = 100;
/** Temporal's names of the closes that run no workflow code, as visibility and describe spell them. */
const ORPHANING: Record<string, OrphanedBy> = {
  Terminated: 'terminated',
  TERMINATED: 'terminated',
  TimedOut: 'timed-out',
  TIMED_OUT: 'timed-out',
};

/**
 * The run-reconcile schedule's work. A terminated or timed-out `agentExecution` workflow runs
 * none of its own end: its row would stay live for good, holding its agent's slot, its run token
 * accepted, its task running on the host. This finds those runs and ends them as the workflow's
 * end would have; and the runs, live since long, whose workflow Temporal does not know at all.
 */
export function createReconcileActivities(deps: ActivityDeps) {
  const { orm, temporalClient: client, logger } = deps;
  // The workflow's own step for a run that stopped for good: tasks/cancel on the host, best effort.
  const { cancelRemoteTask } = createInputActivities(deps);

  /**
   * The workflow of this id as Temporal describes it now; undefined when Temporal does not know
   * it (never started, or past the namespace's retention).
   */
  async function describe(workflowId: string) {
    return client.workflow
      .getHandle(workflowId)
      .describe()
      .catch((error: unknown) => {
        if (error instanceof WorkflowNotFoundError) return undefined;
        throw error;
      });
  }

  /** How it closed, if it closed terminated or timed out (on `taskQueue`), with the terminate's reason. */
  async function closedHow(
    description: Awaited<ReturnType<typeof describe>>,
    taskQueue: string,
  ): Promise<{ by: OrphanedBy; reason?: string } | undefined> {
    if (!description || description.taskQueue !== taskQueue) return undefined;
    const by = ORPHANING[description.status.name];
    if (!by) return undefined;
    if (by !== 'terminated') return { by };
    // The last event of a terminated run is its termination: its reason (and who asked) says why.
    const { history } = await client.workflowService.getWorkflowExecutionHistoryReverse({
      namespace: client.options.namespace,
      execution: { workflowId: description.workflowId, runId: description.runId },
      maximumPageSize: 1,
    });
    const terminated = history?.events?.[0]?.workflowExecutionTerminatedEventAttributes;
    const reason = [terminated?.reason, terminated?.identity ? `by ${terminated.identity}` : ''].filter(Boolean).join(', ');
    return { by, ...(reason ? { reason } : {}) };
  }

  /**
   * Whether the run is orphaned now, and how: its `agentExecution` workflow closed terminated or
   * timed out. A run of a task whose `agentExecution` has not started is its `taskRun`'s: that one
   * closed so orphans it too. A run live for long (`mayBeLost`: lostAfterSeconds) whose workflows
   * Temporal knows not at all is `lost`: its start was long ago, so nothing will run it. A newer
   * one may be starting still, and is left alone.
   */
  async function orphanedNow(
    run: { id: string; taskRunWorkflowId?: string },
    taskQueue: string,
    mayBeLost: boolean,
  ): Promise<{ by: OrphanedBy; workflowId: string; reason?: string } | undefined> {
    const workflowId = executionWorkflowId(run.id);
    const own = await describe(workflowId);
    if (own) {
      const how = await closedHow(own, taskQueue);
      return how && { ...how, workflowId };
    }
    if (run.taskRunWorkflowId) {
      const taskRun = await describe(run.taskRunWorkflowId);
      if (taskRun) {
        const how = await closedHow(taskRun, taskQueue);
        return how && { ...how, workflowId: run.taskRunWorkflowId };
      }
    }
    return mayBeLost ? { by: 'lost', workflowId } : undefined;
  }

  /**
   * Ends the run if it is orphaned (orphanedNow): its task cancelled on the host, then the row.
   * Says what it found.
   */
  async function endIfOrphaned(
    run: { id: string; taskRunWorkflowId?: string },
    taskQueue: string,
    mayBeLost: boolean,
    summary: RunReconcileSummary,
  ): Promise<void> {
    const executionId = run.id;
    // Visibility lags and lists past runs of an id: what counts is how the id's latest run is now.
    const orphaned = await orphanedNow(run, taskQueue, mayBeLost);
    if (!orphaned) {
      summary.running++;
      return;
    }
    const { by, workflowId, reason } = orphaned;
    // Before the row ends, as in the workflow: a retry after a crash between the two finds the
    // run live still and sends it again (a host answers a second tasks/cancel and ignores it).
    const taskCancelled = await cancelRemoteTask(executionId);
    const { ended, next } = await endOrphanedRun(orm.em.fork(), executionId, by, workflowId, reason);
    if (!ended) return;
    const reconciled: ReconciledRun = { executionId, status: orphanedRunOutcome(by, workflowId).status, taskCancelled };
    summary.ended.push(reconciled);
    logger.warn({ ...reconciled, workflowId, workflow: by, reason }, 'ended a run whose workflow closed without ending it');
    await wakeQueuedRuns({ client }, next);
  }

  /** Where this worker's next page of olderLiveRuns starts (undefined: from the first). */
  let olderCursor: string | undefined;

  /**
   * Live runs older than the look-back window, a page at a time, resuming after the last one a
   * previous sweep of this worker checked (and from the start again past the end): a workflow
   * closed before the window (the workers were down longer than it) is not in the listing.
   */
  async function olderLiveRuns(since: Date): Promise<{ id: string; taskRunWorkflowId?: string; createdAt: Date }[]> {
    const page = await orm.em.fork().find(
      Execution,
      {
        status: { $in: [...LIVE_EXECUTION_STATUSES] },
        workflowId: { $ne: null },
        createdAt: { $lt: since },
        ...(olderCursor ? { id: { $gt: olderCursor } } : {}),
      },
      { fields: ['id', 'taskRunWorkflowId', 'createdAt'], orderBy: { id: 'asc' }, limit: OLDER_RUNS_PER_SWEEP },
    );
    olderCursor = page.length === OLDER_RUNS_PER_SWEEP ? page.at(-1)!.id : undefined;
    return page.map((e) => ({
      id: e.id,
      createdAt: e.createdAt,
      ...(e.taskRunWorkflowId ? { taskRunWorkflowId: e.taskRunWorkflowId } : {}),
    }));
  }
  return {
    /**
     * Lists (Temporal visibility) the `agentExecution` workflows of `taskQueue` terminated or
     * timed out in the last `lookbackSeconds`, keeps those whose run is still live in the
     * database, and ends each whose workflow id is closed still (a newer run of the id is left
     * alone): its task cancelled on the host, then CANCELLED or TIMED_OUT, audited, and the
     * queued runs that get its slot woken. Idempotent: an ended run is skipped, and of several
     * reconciles at once only one ends a run (endOrphanedRun).
     *
     * Visibility, not the live rows: the listing grows with the runs closed this way in the
     * window (a few), not with the runs in flight (many), and costs no call per live row. Runs
     * live since before the window (few: a run that long is rare) are also described, up to
     * OLDER_RUNS_PER_SWEEP a sweep: their workflow may have closed before the window began, while
     * no worker ran, or be unknown to Temporal (lost: those end FAILED).
     */
    async reconcileClosedRuns(input: RunReconcileInput): Promise<RunReconcileSummary> {
      const since = new Date(Date.now() - input.lookbackSeconds * 1000);
      const query =
        `WorkflowType = '${AGENT_EXECUTION_WORKFLOW}' AND ExecutionStatus IN ('Terminated', 'TimedOut') ` +
        `AND CloseTime > '${since.toISOString()}' AND TaskQueue = '${input.taskQueue.replace(/'/g, "''")}'`;
      const closed = new Set<string>();
      for await (const workflow of client.workflow.list({ query })) closed.add(workflow.workflowId);
      const executionIds = [...closed].flatMap((id) => executionIdOfWorkflow(id) ?? []);
      const older = await olderLiveRuns(since);
      const summary: RunReconcileSummary = { closedWorkflows: closed.size, ended: [], running: 0, olderChecked: older.length };
      const live = executionIds.length
        ? await orm.em
            .fork()
            .find(Execution, { id: { $in: executionIds }, status: { $in: [...LIVE_EXECUTION_STATUSES] } }, { fields: ['id'] })
        : [];
      const listed = new Set(live.map((e) => e.id));
      for (const id of listed) await endIfOrphaned({ id }, input.taskQueue, false, summary);
      const lostBefore = Date.now() - (input.lostAfterSeconds ?? input.lookbackSeconds) * 1000;
      for (const run of older) {
        if (!listed.has(run.id)) await endIfOrphaned(run, input.taskQueue, run.createdAt.getTime() < lostBefore, summary);
      }
      return summary;
    },
  };
}
