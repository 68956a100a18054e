import { ScheduleNotFoundError, ScheduleOverlapPolicy, type Client } from '@temporalio/client';
import type { Config } from '../lib/config';
import { searchAttributes } from '../domain/temporal';
import { SERVER_HEALTH_WORKFLOW, type ServerHealthInput } from '../workflows/contracts/server-check';

export const SERVER_HEALTH_SCHEDULE_ID = 'server-health';

/**
 * Creates (or brings up to date) the `server-health` schedule. Idempotent: every worker calls
 * it at start, so a changed interval or concurrency takes effect on the next deploy.
 */
export async function ensureServerHealthSchedule(
  client: Client,
  config: Pick<Config, 'temporal' | 'mcp'>,
  scheduleId = SERVER_HEALTH_SCHEDULE_ID,
): Promise<void> {
  const every = config.mcp.healthIntervalSeconds * 1000;
  const action = {
    type: 'startWorkflow' as const,
    workflowType: SERVER_HEALTH_WORKFLOW,
    workflowId: scheduleId,
    taskQueue: config.temporal.taskQueue,
    args: [{ concurrency: config.mcp.healthConcurrency }] as [ServerHealthInput],
    typedSearchAttributes: searchAttributes({ kind: 'server-health' }),
    workflowExecutionTimeout: Math.max(60, config.mcp.healthIntervalSeconds * 2) * 1000,
  };
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
