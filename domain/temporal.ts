import { randomUUID } from 'node:crypto';
import {
  ScheduleNotFoundError,
  ScheduleOverlapPolicy,
  WorkflowFailedError,
  WorkflowNotFoundError,
  type Client,
  type Connection,
} from '@temporalio/client';
import { CancelledFailure, TerminatedFailure, type SearchAttributePair } from '@temporalio/common';
import { SearchAttributes } from '../lib/search-attributes';
import {
  AGENT_EXECUTION_WORKFLOW,
  executionWorkflowId,
  inputAnsweredSignal,
  slotFreedSignal,
  progressQuery,
  progressSignal,
  runResultOfFailure,
  type AgentExecutionResult,
  type AgentExecutionWorkflow,
  type ProgressSnapshot,
} from '../workflows/contracts/agent-execution';
import { AGENT_PROVISION_WORKFLOW, agentProvisionWorkflowId, type AgentProvisionWorkflow } from '../workflows/contracts/agent-provision';
import {
  AGENT_RETIRE_WORKFLOW,
  agentRetireWorkflowId,
  type AgentRetireInput,
  type AgentRetireWorkflow,
} from '../workflows/contracts/agent-retire';
import {
  SERVER_CHECK_WORKFLOW,
  serverCheckWorkflowId,
  type ServerCheckInput,
  type ServerCheckWorkflow,
} from '../workflows/contracts/server-check';
import {
  TOOL_INSTALL_WORKFLOW,
  toolInstallWorkflowId,
  type ToolAction,
  type ToolInstallWorkflow,
} from '../workflows/contracts/tool-install';
import {
  scheduledTaskRunWorkflowId,
  TASK_RUN_WORKFLOW,
  taskRunWorkflowId,
  taskScheduleId,
  type TaskRunInput,
  type TaskRunWorkflow,
} from '../workflows/contracts/task-run';
import {
  WEBHOOK_DELIVERY_WORKFLOW,
  webhookDeliveryWorkflowId,
  type WebhookDeliveryWorkflow,
} from '../workflows/contracts/webhook-delivery';

/**
 * The typed Temporal boundary: every workflow the API or an activity starts, queries or signals
 * goes through here, started by its contract's type name and typed by its contract's signature
 * (workflows/contracts/: no workflow code is loaded here), with its business id and its search
 * attributes built in one place.
 */
export interface TemporalAccess {
  client: Client;
  /** For deadlines on queries a person waits for. */
  connection?: Connection;
  taskQueue: string;
}

export type ExecutionKind =
  | 'agent-execution'
  | 'agent-provision'
  | 'agent-retire'
  | 'server-test'
  | 'server-health'
  | 'system-check'
  | 'tool-install'
  | 'task-run'
  | 'webhook-delivery'
  | 'run-reconcile';

export interface RunLabels {
  organizationId?: string;
  agentId?: string;
  serverId?: string;
  taskId?: string;
  kind: ExecutionKind;
}

/** The Keyword search attributes an operator filters runs by in the Web UI. */
export function searchAttributes(labels: RunLabels): SearchAttributePair[] {
  const pairs: SearchAttributePair[] = [];
  if (labels.organizationId) pairs.push({ key: SearchAttributes.OrganizationId, value: labels.organizationId });
  if (labels.agentId) pairs.push({ key: SearchAttributes.AgentId, value: labels.agentId });
  if (labels.serverId) pairs.push({ key: SearchAttributes.ServerId, value: labels.serverId });
  if (labels.taskId) pairs.push({ key: SearchAttributes.TaskId, value: labels.taskId });
  pairs.push({ key: SearchAttributes.ExecutionKind, value: labels.kind });
  return pairs;
}

export function startAgentExecution(
  temporal: TemporalAccess,
  run: { executionId: string; organizationId: string; agentId: string; serverId: string; taskId?: string; slotTaken: boolean },
) {
  return temporal.client.workflow.start<AgentExecutionWorkflow>(AGENT_EXECUTION_WORKFLOW, {
    taskQueue: temporal.taskQueue,
    workflowId: executionWorkflowId(run.executionId),
    args: [run.executionId, { slotTaken: run.slotTaken }],
    typedSearchAttributes: searchAttributes({ ...run, kind: 'agent-execution' }),
  });
}

export function executionHandle(temporal: Pick<TemporalAccess, 'client'>, executionId: string) {
  return temporal.client.workflow.getHandle<AgentExecutionWorkflow>(executionWorkflowId(executionId));
}

/**
 * Waits for the run's end and says how it ended, whether its workflow completed (a COMPLETED
 * run, or a run started before failed runs failed their workflows), failed (the result is in
 * the failure), was cancelled or terminated.
 */
export async function executionOutcome(temporal: Pick<TemporalAccess, 'client'>, executionId: string): Promise<AgentExecutionResult> {
  try {
    return await executionHandle(temporal, executionId).result();
  } catch (error) {
    if (!(error instanceof WorkflowFailedError)) throw error;
    const ended = runResultOfFailure(error.cause);
    if (ended) return ended;
    if (error.cause instanceof CancelledFailure) return { status: 'CANCELLED', error: 'cancelled by request' };
    if (error.cause instanceof TerminatedFailure) return { status: 'CANCELLED', error: 'terminated' };
    throw error;
  }
}

/** The run's live progress from its workflow, within `deadlineMs`. */
export async function queryProgress(temporal: TemporalAccess, executionId: string, deadlineMs = 2000): Promise<ProgressSnapshot> {
  const handle = executionHandle(temporal, executionId);
  if (!temporal.connection) return handle.query(progressQuery);
  return temporal.connection.withDeadline(Date.now() + deadlineMs, () => handle.query(progressQuery));
}

export function signalProgress(temporal: Pick<TemporalAccess, 'client'>, executionId: string, snapshot: ProgressSnapshot): Promise<void> {
  return executionHandle(temporal, executionId).signal(progressSignal, snapshot);
}

/** Wakes a run waiting for input: its pending question was answered (the row says how). */
export function signalInputAnswered(temporal: Pick<TemporalAccess, 'client'>, executionId: string, inputId: string): Promise<void> {
  return executionHandle(temporal, executionId).signal(inputAnsweredSignal, { inputId });
}

/** Wakes the queued runs a freed slot may start (best effort: a run missing the signal re-checks its queue on its own). */
export async function wakeQueuedRuns(temporal: Pick<TemporalAccess, 'client'>, executionIds: readonly string[]): Promise<void> {
  for (const id of executionIds)
    await executionHandle(temporal, id)
      .signal(slotFreedSignal)
      .catch(() => undefined);
}

export function startAgentProvision(
  temporal: TemporalAccess,
  run: { agentId: string; organizationId: string; serverId: string; validatedBy: string },
) {
  return temporal.client.workflow.start<AgentProvisionWorkflow>(AGENT_PROVISION_WORKFLOW, {
    taskQueue: temporal.taskQueue,
    workflowId: agentProvisionWorkflowId(run.agentId),
    args: [{ agentId: run.agentId, validatedBy: run.validatedBy }],
    workflowExecutionTimeout: '5m',
    typedSearchAttributes: searchAttributes({ ...run, kind: 'agent-provision' }),
  });
}

/**
 * Retires a deleted agent from its server (`deactivate_agent` with `removeWorkspace`). No
 * execution timeout: the activity's own schedule-to-close bounds it, and the workflow then
 * still writes its audit row.
 */
export function startAgentRetire(temporal: TemporalAccess, run: AgentRetireInput) {
  return temporal.client.workflow.start<AgentRetireWorkflow>(AGENT_RETIRE_WORKFLOW, {
    taskQueue: temporal.taskQueue,
    workflowId: agentRetireWorkflowId(run.agentId),
    args: [run],
    typedSearchAttributes: searchAttributes({
      organizationId: run.organizationId,
      agentId: run.agentId,
      serverId: run.serverId,
      kind: 'agent-retire',
    }),
  });
}

export function startServerCheck(temporal: TemporalAccess, run: ServerCheckInput & { reason: 'test' | 'health'; organizationId: string }) {
  return temporal.client.workflow.start<ServerCheckWorkflow>(SERVER_CHECK_WORKFLOW, {
    taskQueue: temporal.taskQueue,
    workflowId: serverCheckWorkflowId(run.reason, run.serverId, randomUUID()),
    args: [{ serverId: run.serverId, reason: run.reason }],
    workflowExecutionTimeout: '5m',
    typedSearchAttributes: searchAttributes({ organizationId: run.organizationId, serverId: run.serverId, kind: `server-${run.reason}` }),
  });
}

/**
 * Starts the delivery of one outbox row. Its workflow id is the row's, so a second start for
 * the same row (the API's and a worker's outbox drain racing) is refused with
 * WorkflowExecutionAlreadyStartedError while the first runs.
 */
export function startWebhookDelivery(temporal: TemporalAccess, run: { deliveryId: string; organizationId: string }) {
  return temporal.client.workflow.start<WebhookDeliveryWorkflow>(WEBHOOK_DELIVERY_WORKFLOW, {
    taskQueue: temporal.taskQueue,
    workflowId: webhookDeliveryWorkflowId(run.deliveryId),
    args: [{ deliveryId: run.deliveryId }],
    typedSearchAttributes: searchAttributes({ organizationId: run.organizationId, kind: 'webhook-delivery' }),
  });
}

/**
 * Starts an install or uninstall of a catalog tool on a server. While one runs for the same
 * tool and server, Temporal refuses the start (WorkflowExecutionAlreadyStartedError).
 */
export function startToolInstall(
  temporal: TemporalAccess,
  run: { serverId: string; toolId: string; organizationId: string; action: ToolAction; version?: string },
) {
  return temporal.client.workflow.start<ToolInstallWorkflow>(TOOL_INSTALL_WORKFLOW, {
    taskQueue: temporal.taskQueue,
    workflowId: toolInstallWorkflowId(run.serverId, run.toolId),
    args: [run.serverId, run.toolId, run.action, run.version ? { version: run.version } : {}],
    workflowExecutionTimeout: '1h',
    typedSearchAttributes: searchAttributes({ organizationId: run.organizationId, serverId: run.serverId, kind: 'tool-install' }),
  });
}

export function toolInstallHandle(temporal: Pick<TemporalAccess, 'client'>, serverId: string, toolId: string) {
  return temporal.client.workflow.getHandle<ToolInstallWorkflow>(toolInstallWorkflowId(serverId, toolId));
}

/** One occurrence of a task, started now (run now): workflow `task-run-<taskId>-<executionId>`. */
export function startTaskRun(
  temporal: TemporalAccess,
  run: TaskRunInput & { executionId: string; organizationId: string; agentId?: string },
) {
  return temporal.client.workflow.start<TaskRunWorkflow>(TASK_RUN_WORKFLOW, {
    taskQueue: temporal.taskQueue,
    workflowId: taskRunWorkflowId(run.taskId, run.executionId),
    args: [
      {
        taskId: run.taskId,
        trigger: run.trigger,
        executionId: run.executionId,
        ...(run.requestedBy ? { requestedBy: run.requestedBy } : {}),
      },
    ],
    typedSearchAttributes: searchAttributes({
      organizationId: run.organizationId,
      taskId: run.taskId,
      agentId: run.agentId,
      kind: 'task-run',
    }),
  });
}

/** When a recurring or one-off task fires (a Temporal Schedule `task-<taskId>`). */
export interface TaskScheduleSpec {
  taskId: string;
  organizationId: string;
  agentId?: string;
  /** Temporal's cron (domain/tasks/schedule-spec.ts `temporalCron`), in `timezone`. */
  cron: string;
  timezone: string;
  /** A one-off: the schedule ends after this instant. */
  endAt?: Date;
  paused: boolean;
  /** How late an action missed while Temporal was unavailable may still start. */
  catchupWindowMs: number;
  note: string;
}

function taskScheduleParts(temporal: TemporalAccess, spec: TaskScheduleSpec) {
  const labels = { organizationId: spec.organizationId, taskId: spec.taskId, agentId: spec.agentId, kind: 'task-run' as const };
  return {
    spec: { cronExpressions: [spec.cron], timezone: spec.timezone, ...(spec.endAt ? { endAt: spec.endAt } : {}) },
    action: {
      type: 'startWorkflow' as const,
      workflowType: TASK_RUN_WORKFLOW,
      // The schedule appends the scheduled time to this id, one workflow per occurrence.
      workflowId: scheduledTaskRunWorkflowId(spec.taskId),
      taskQueue: temporal.taskQueue,
      args: [{ taskId: spec.taskId, trigger: 'schedule' }] as [TaskRunInput],
      typedSearchAttributes: searchAttributes(labels),
    },
    // The task's own overlap policy is applied by taskRun against the task's runs in the
    // database (a skipped occurrence is then recorded, and "run now" obeys it too); Temporal
    // would skip silently, and its trigger() ignores the policy anyway.
    policies: { overlap: ScheduleOverlapPolicy.ALLOW_ALL, catchupWindow: spec.catchupWindowMs },
    typedSearchAttributes: searchAttributes(labels),
  };
}

/** Creates the task's schedule, or brings it up to date (spec, action, policies, paused) when it exists. */
export async function upsertTaskSchedule(temporal: TemporalAccess, spec: TaskScheduleSpec): Promise<void> {
  const parts = taskScheduleParts(temporal, spec);
  const handle = temporal.client.schedule.getHandle(taskScheduleId(spec.taskId));
  try {
    await handle.update((previous) => ({
      ...previous,
      spec: parts.spec,
      action: parts.action,
      policies: { ...previous.policies, ...parts.policies },
      state: { ...previous.state, paused: spec.paused, note: spec.note },
    }));
  } catch (error) {
    if (!(error instanceof ScheduleNotFoundError)) throw error;
    await temporal.client.schedule.create({
      scheduleId: taskScheduleId(spec.taskId),
      ...parts,
      state: { paused: spec.paused, note: spec.note },
    });
  }
}

/** Removes the task's schedule; one that is already gone is fine. */
export async function deleteTaskSchedule(temporal: TemporalAccess, taskId: string): Promise<void> {
  await temporal.client.schedule
    .getHandle(taskScheduleId(taskId))
    .delete()
    .catch((error: unknown) => {
      if (!(error instanceof ScheduleNotFoundError)) throw error;
    });
}

/** The schedule's next action times (Temporal's own computation), or undefined without a schedule. */
export async function taskScheduleNextTimes(temporal: TemporalAccess, taskId: string, deadlineMs = 2000): Promise<Date[] | undefined> {
  const describe = () => temporal.client.schedule.getHandle(taskScheduleId(taskId)).describe();
  try {
    const description = temporal.connection ? await temporal.connection.withDeadline(Date.now() + deadlineMs, describe) : await describe();
    return description.info.nextActionTimes;
  } catch (error) {
    if (error instanceof ScheduleNotFoundError) return undefined;
    throw error;
  }
}

/** The task's occurrences whose taskRun is still open (visibility; a few seconds behind at worst). */
export async function openTaskRuns(temporal: TemporalAccess, taskId: string): Promise<string[]> {
  const ids: string[] = [];
  for await (const run of temporal.client.workflow.list({
    query: `TaskId = '${taskId}' AND ExecutionKind = 'task-run' AND ExecutionStatus = 'Running'`,
  }))
    ids.push(run.workflowId);
  return ids;
}

/** Cancels or terminates a workflow that may already have ended. */
export async function stopWorkflow(
  temporal: TemporalAccess,
  workflowId: string,
  how: 'cancel' | 'terminate',
  reason?: string,
): Promise<void> {
  const handle = temporal.client.workflow.getHandle(workflowId);
  try {
    if (how === 'cancel') await handle.cancel();
    else await handle.terminate(reason);
  } catch (error) {
    if (!(error instanceof WorkflowNotFoundError)) throw error;
  }
}
