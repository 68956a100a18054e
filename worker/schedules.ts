import {
  ScheduleNotFoundError,
  ScheduleOverlapPolicy,
  type Client,
  type ScheduleOptionsStartWorkflowAction,
  type Workflow,
} from '@temporalio/client';
import type { Config } from '../lib/config';
import { searchAttributes } from '../domain/temporal';
import { SERVER_HEALTH_WORKFLOW, type ServerHealthInput } from '../workflows/contracts/server-check';
import { RUN_RECONCILE_WORKFLOW, type RunReconcileInput } from '../workflows/contracts/run-reconcile';

export const SERVER_HEALTH_SCHEDULE_ID = 'server-health';
export const RUN_RECONCILE_SCHEDULE_ID = 'run-reconcile';

/**
 * Creates (or brings up to date) the `server-health` schedule. Idempotent: every worker calls
 * it at start, so a changed interval or concurrency takes effect on the next deploy.
 */
export async function ensureServerHealthSchedule(
  client: Client,
  config: Pick<Config, 'temporal' | 'mcp'>,
  scheduleId = SERVER_HEALTH_SCHEDULE_ID,
): Promise<void> {
  await ensureSchedule(client, scheduleId, config.mcp.healthIntervalSeconds, {
    type: 'startWorkflow' as const,
    workflowType: SERVER_HEALTH_WORKFLOW,
    workflowId: scheduleId,
    taskQueue: config.temporal.taskQueue,
    args: [{ concurrency: config.mcp.healthConcurrency }] as [ServerHealthInput],
    typedSearchAttributes: searchAttributes({ kind: 'server-health' }),
    workflowExecutionTimeout: Math.max(60, config.mcp.healthIntervalSeconds * 2) * 1000,
  });
}

/**
 * Creates (or brings up to date) the `run-reconcile` schedule (workflows/run-reconcile.workflow.ts):
 * runs whose workflow was terminated or timed out are ended within an interval. Idempotent, as
 * the server-health one.
 */
export async function ensureRunReconcileSchedule(
  client: Client,
  config: Pick<Config, 'temporal' | 'executions'>,
  scheduleId = RUN_RECONCILE_SCHEDULE_ID,
): Promise<void> {
  const { intervalSeconds, lookbackSeconds } = config.executions.reconcile;
  await ensureSchedule(client, scheduleId, intervalSeconds, {
    type: 'startWorkflow' as const,
    workflowType: RUN_RECONCILE_WORKFLOW,
    workflowId: scheduleId,
    taskQueue: config.temporal.taskQueue,
    args: [{ lookbackSeconds, taskQueue: config.temporal.taskQueue }] as [RunReconcileInput],
    typedSearchAttributes: searchAttributes({ kind: 'run-reconcile' }),
    workflowExecutionTimeout: Math.max(60, intervalSeconds * 2) * 1000,
  });
}

/** Updates the schedule to `every` and `action`, or creates it (one overlapping run is skipped, not queued). */
async function ensureSchedule(
  client: Client,
  scheduleId: string,
  everySeconds: number,
  action: ScheduleOptionsStartWorkflowAction<Workflow>,
): Promise<void> {
  const every = everySeconds * 1000;
  const handle = client.schedule.getHandle(scheduleId);
  try {
    await handle.update((previous) => ({
      ...previous,
      spec: { intervals: [{ every }] },
      action,
      policies: { ...previous.policies, overlap: ScheduleOverlapPolicy.SKIP },
    }));
  } catch (error) {
    if (!(error instanceof ScheduleNotFoundError)) throw error;
    await client.schedule
      .create({
        scheduleId,
        spec: { intervals: [{ every }] },
        action,
        policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1m' },
      })
      .catch((createError: unknown) => {
        // Another worker created it between our update and create.
        if ((createError as Error).name !== 'ScheduleAlreadyRunning') throw createError;
      });
  }
}
