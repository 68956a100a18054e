import { ApplicationFailure } from '@temporalio/activity';
import type { EntityManager } from '@mikro-orm/postgresql';
import { McpServer, ServerTool, ServerToolStatus, ToolDefinition } from '../entities';
import { BUSY_STATUSES, setServerToolState, type ServerToolChange, type ServerToolRef } from '../domain/tools/install-state';
import { TOOL_CHANGE_REFUSED, type ToolAction, type ToolChangeInput, type ToolChangeOutcome } from '../workflows/contracts/tool-install';
import { tail } from './tool-check';
import type { HostOutcome } from './tool-change';

/** The final row for an outcome; a FAILED change keeps the last known version. */
function finalChange(outcome: HostOutcome, at: Date): ServerToolChange {
  const base = { logTail: tail(outcome.log) || null, ...(outcome.verified ? { checkedAt: at } : {}) };
  if (outcome.status === 'INSTALLED')
    return { ...base, status: ServerToolStatus.INSTALLED, installedVersion: outcome.version ?? null, installedAt: at, lastError: null };
  if (outcome.status === 'NOT_INSTALLED')
    return { ...base, status: ServerToolStatus.NOT_INSTALLED, installedVersion: null, installedAt: null, lastError: null };
  return { ...base, status: ServerToolStatus.FAILED, lastError: outcome.error ?? 'failed' };
}

function outcomeAction(action: ToolAction, status: ToolChangeOutcome['status']): string {
  if (status === 'FAILED') return `server.tool_${action}_failed`;
  return action === 'install' ? 'server.tool_installed' : 'server.tool_uninstalled';
}

export async function loadChange(em: EntityManager, input: Pick<ToolChangeInput, 'serverId' | 'toolId'>) {
  const [server, tool] = await Promise.all([
    em.findOne(McpServer, input.serverId, { populate: ['masterTokenCiphertext'] }),
    em.findOne(ToolDefinition, input.toolId),
  ]);
  if (!server || !tool)
    throw ApplicationFailure.nonRetryable(`the ${server ? 'catalog entry' : 'server'} no longer exists`, TOOL_CHANGE_REFUSED);
  const ref: ServerToolRef = { organizationId: server.organization.id, serverId: server.id, toolId: tool.id, toolName: tool.name };
  return { server, tool, ref };
}

/** Records how a change ended, if the workflow still owns the row; audited with it. */
export async function recordOutcome(
  em: EntityManager,
  ref: ServerToolRef,
  tool: ToolDefinition,
  input: ToolChangeInput,
  outcome: HostOutcome,
): Promise<void> {
  await setServerToolState(
    em,
    ref,
    finalChange(outcome, new Date()),
    { workflowId: input.workflowId, from: BUSY_STATUSES },
    {
      action: outcomeAction(input.action, outcome.status),
      resourceType: 'server',
      resourceId: ref.serverId,
      changes: {
        toolId: tool.id,
        toolName: tool.name,
        status: outcome.status,
        version: outcome.version ?? null,
        error: outcome.error ?? null,
        workflowId: input.workflowId,
        ...(outcome.alreadyInstalled ? { alreadyInstalled: true } : outcome.skipped ? { foundDoneOnRetry: true } : {}),
      },
    },
    outcome.alreadyInstalled ? { alreadyInstalled: true } : undefined,
  );
}

/** What the workflow learns of an outcome (the log stays on the row). */
export function changeOutcome(outcome: HostOutcome): ToolChangeOutcome {
  return {
    status: outcome.status,
    ...(outcome.version ? { version: outcome.version } : {}),
    ...(outcome.error ? { error: outcome.error } : {}),
    ...(outcome.skipped ? { skipped: true } : {}),
    ...(outcome.alreadyInstalled ? { alreadyInstalled: true } : {}),
  };
}

/** The abandonToolChange activity. */
export async function abandonToolChange(em: EntityManager, input: ToolChangeInput, reason: string): Promise<ToolChangeOutcome> {
  const [server, tool] = await Promise.all([
    em.findOne(McpServer, input.serverId, { fields: ['organization'] }),
    em.findOne(ToolDefinition, input.toolId, { fields: ['name'] }),
  ]);
  if (!server || !tool) return { status: 'FAILED', error: reason };
  const ref: ServerToolRef = { organizationId: server.organization.id, serverId: server.id, toolId: tool.id, toolName: tool.name };
  const changed = await setServerToolState(
    em,
    ref,
    { status: ServerToolStatus.FAILED, lastError: reason },
    { workflowId: input.workflowId, from: BUSY_STATUSES },
    {
      action: outcomeAction(input.action, 'FAILED'),
      resourceType: 'server',
      resourceId: ref.serverId,
      changes: { toolId: tool.id, toolName: tool.name, status: 'FAILED', error: reason, workflowId: input.workflowId },
    },
  );
  if (changed) return { status: 'FAILED', error: reason };
  const row = await em.findOne(ServerTool, { server: input.serverId, tool: input.toolId });
  const status = row && !BUSY_STATUSES.includes(row.status) ? (row.status as ToolChangeOutcome['status']) : 'NOT_INSTALLED';
  return { status, ...(row?.installedVersion ? { version: row.installedVersion } : {}), error: reason };
}
