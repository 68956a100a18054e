import { randomUUID } from 'node:crypto';
import type { Client, Connection } from '@temporalio/client';
import type { SearchAttributePair } from '@temporalio/common';
import { SearchAttributes } from '../lib/search-attributes';
import { agentExecution, executionWorkflowId, progressQuery, progressSignal, type ProgressSnapshot } from '../workflows/agent-execution.workflow';
import { agentProvision, agentProvisionWorkflowId } from '../workflows/agent-provision.workflow';
import { serverCheck, serverCheckWorkflowId, type ServerCheckInput } from '../workflows/server-check.workflow';
import { toolInstall, toolInstallWorkflowId, type ToolAction } from '../workflows/tool-install.workflow';

/**
 * The typed Temporal boundary: every workflow the API or an activity starts, queries or signals
 * goes through here, started by its function (never by a name string), with its business id
 * and its search attributes built in one place.
 */
export interface TemporalAccess {
  client: Client;
  /** For deadlines on queries a person waits for. */
  connection?: Connection;
  taskQueue: string;
}

export type ExecutionKind = 'agent-execution' | 'agent-provision' | 'server-test' | 'server-health' | 'system-check' | 'tool-install';

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
  return temporal.client.workflow.start(agentExecution, {
    taskQueue: temporal.taskQueue,
    workflowId: executionWorkflowId(run.executionId),
    args: [run.executionId, { slotTaken: run.slotTaken }],
    typedSearchAttributes: searchAttributes({ ...run, kind: 'agent-execution' }),
  });
}

export function executionHandle(temporal: Pick<TemporalAccess, 'client'>, executionId: string) {
  return temporal.client.workflow.getHandle<typeof agentExecution>(executionWorkflowId(executionId));
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

export function startAgentProvision(temporal: TemporalAccess, run: { agentId: string; organizationId: string; serverId: string; validatedBy: string }) {
  return temporal.client.workflow.start(agentProvision, {
    taskQueue: temporal.taskQueue,
    workflowId: agentProvisionWorkflowId(run.agentId),
    args: [{ agentId: run.agentId, validatedBy: run.validatedBy }],
    workflowExecutionTimeout: '5m',
    typedSearchAttributes: searchAttributes({ ...run, kind: 'agent-provision' }),
  });
}

export function startServerCheck(temporal: TemporalAccess, run: ServerCheckInput & { reason: 'test' | 'health'; organizationId: string }) {
  return temporal.client.workflow.start(serverCheck, {
    taskQueue: temporal.taskQueue,
    workflowId: serverCheckWorkflowId(run.reason, run.serverId, randomUUID()),
    args: [{ serverId: run.serverId, reason: run.reason }],
    workflowExecutionTimeout: '5m',
    typedSearchAttributes: searchAttributes({ organizationId: run.organizationId, serverId: run.serverId, kind: `server-${run.reason}` }),
  });
}

/**
 * Starts an install or uninstall of a catalog tool on a server. While one runs for the same
 * tool and server, Temporal refuses the start (WorkflowExecutionAlreadyStartedError).
 */
export function startToolInstall(temporal: TemporalAccess, run: { serverId: string; toolId: string; organizationId: string; action: ToolAction; version?: string }) {
  return temporal.client.workflow.start(toolInstall, {
    taskQueue: temporal.taskQueue,
    workflowId: toolInstallWorkflowId(run.serverId, run.toolId),
    args: [run.serverId, run.toolId, run.action, run.version ? { version: run.version } : {}],
    workflowExecutionTimeout: '1h',
    typedSearchAttributes: searchAttributes({ organizationId: run.organizationId, serverId: run.serverId, kind: 'tool-install' }),
  });
}

export function toolInstallHandle(temporal: Pick<TemporalAccess, 'client'>, serverId: string, toolId: string) {
  return temporal.client.workflow.getHandle<typeof toolInstall>(toolInstallWorkflowId(serverId, toolId));
}
