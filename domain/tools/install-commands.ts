/**
 * Installs, uninstalls and cancels of catalog tools on servers, as a person asks for them:
 * the catalog entry the organisation may use, the request checked and audited, and the
 * `toolInstall` workflow started (or cancelled). The workflow changes the tool's state.
 */
import type { EntityManager } from '@mikro-orm/postgresql';
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError } from '@temporalio/client';
import { ServerTool, ServerToolStatus, ToolDefinition, type McpServer } from '../../entities';
import { toolInstallWorkflowId, type ToolAction } from '../../workflows/contracts/tool-install';
import type { Actor } from '../actor';
import { audit } from '../audit';
import { AppError } from '../errors';
import type { RunDeps } from '../runs/run-deps';
import { startToolInstall, toolInstallHandle } from '../temporal';
import { inCatalogOf } from './catalog-commands';
import { toolCommands } from './host-install';
import { BUSY_STATUSES } from './install-state';

/**
 * The catalog entry an install names, by id or by name (unique in what an organisation sees:
 * its own entries may not take a built-in's name). Another organisation's entry is not found.
 */
export async function findCatalogTool(
  em: EntityManager,
  organizationId: string,
  by: { toolId?: string; name?: string },
): Promise<ToolDefinition> {
  const tool = await em.findOne(ToolDefinition, {
    ...(by.toolId !== undefined ? { id: by.toolId } : { name: by.name }),
    ...inCatalogOf(organizationId),
  });
  if (!tool) throw AppError.notFound('Tool');
  return tool;
}

function runningConflict(tool: ToolDefinition, workflowId: string): AppError {
  return AppError.conflict(
    'install_running',
    `An install or uninstall of ${tool.name} is already running on this server; wait for it or cancel it`,
    { workflowId },
  );
}

export interface ToolChangeRequest {
  server: McpServer;
  tool: ToolDefinition;
  action: ToolAction;
  version?: string;
}

/**
 * Starts an install or uninstall (workflow `tool-<serverId>-<toolId>`) and audits it. One
 * change per tool and server at a time: 409 `install_running` while one runs. An uninstall
 * needs something to remove.
 */
export async function requestToolChange(
  deps: Pick<RunDeps, 'orm' | 'temporal' | 'logger'>,
  actor: Actor,
  request: ToolChangeRequest,
): Promise<{ workflowId: string }> {
  const { server, tool, action, version } = request;
  if (action === 'install') toolCommands(tool, version);
  const em = deps.orm.em.fork();
  if (action === 'uninstall') {
    const row = await em.findOne(ServerTool, { server: server.id, tool: tool.id }, { fields: ['status'] });
    if (!row || row.status === ServerToolStatus.NOT_INSTALLED) {
      // An install that has not written INSTALLING yet is still one running.
      if (await toolChangeRunning(deps, server.id, tool.id)) throw runningConflict(tool, toolInstallWorkflowId(server.id, tool.id));
      throw AppError.conflict('not_installed', `${tool.name} is not installed on this server`);
    }
  }
  const workflowId = toolInstallWorkflowId(server.id, tool.id);
  const start = () =>
    startToolInstall(deps.temporal, { serverId: server.id, toolId: tool.id, organizationId: actor.organizationId, action, version });
  try {
    await start().catch(async (error: unknown) => {
      if (!(error instanceof WorkflowExecutionAlreadyStartedError) || !(await closedAfterItsOutcome(deps, em, server.id, tool.id)))
        throw error;
      return start();
    });
  } catch (error) {
    if (error instanceof WorkflowExecutionAlreadyStartedError) throw runningConflict(tool, workflowId);
    deps.logger.error({ err: error, workflowId }, 'could not start toolInstall');
    throw AppError.temporalUnavailable('The change could not be started; try again', { workflowId });
  }
  // After the start: a request Temporal refused (one already running) changed nothing to audit.
  audit(em, actor, {
    action: `server.tool_${action}`,
    resourceType: 'server',
    resourceId: server.id,
    changes: { toolId: tool.id, toolName: tool.name, ...(version ? { version } : {}), workflowId },
  });
  await em.flush();
  return { workflowId };
}

/** How long a request waits for a change that has recorded its outcome to close. */
const CLOSING_WAIT_MS = 5000;

/**
 * A change records its outcome a moment before its workflow closes: a person who saw it
 * settle and asks for the next change at once would hit the closing one. When the running
 * workflow has already written a settled state (after it started, comparing the row's clock
 * with Temporal's), wait for it to close. Says whether it has closed; a change still at work
 * is not waited for (409).
 */
async function closedAfterItsOutcome(
  deps: Pick<RunDeps, 'temporal'>,
  em: EntityManager,
  serverId: string,
  toolId: string,
): Promise<boolean> {
  const handle = toolInstallHandle(deps.temporal, serverId, toolId);
  const [described, row] = await Promise.all([
    handle.describe().catch((error: unknown) => {
      if (error instanceof WorkflowNotFoundError) return undefined;
      throw error;
    }),
    em.findOne(ServerTool, { server: serverId, tool: toolId }, { fields: ['status', 'updatedAt'], refresh: true }),
  ]);
  if (!described || described.status.name !== 'RUNNING') return true;
  if (!row || BUSY_STATUSES.includes(row.status) || row.updatedAt < described.startTime) return false;
  let timer: NodeJS.Timeout | undefined;
  const gaveUp = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), CLOSING_WAIT_MS)));
  try {
    return await Promise.race([
      handle.result().then(
        () => true,
        () => true,
      ),
      gaveUp,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Whether the tool's install or uninstall workflow is running now. */
export async function toolChangeRunning(deps: Pick<RunDeps, 'temporal'>, serverId: string, toolId: string): Promise<boolean> {
  try {
    const described = await toolInstallHandle(deps.temporal, serverId, toolId).describe();
    return described.status.name === 'RUNNING';
  } catch (error) {
    if (error instanceof WorkflowNotFoundError) return false;
    throw error;
  }
}

/**
 * Cancels a running install or uninstall: audited, then Temporal's cancel, which reaches the
 * activity on its next heartbeat (within about a second) and the host as
 * notifications/cancelled. The workflow records FAILED "cancelled by request". Nothing
 * running: 409 `not_running`.
 */
export async function cancelToolChange(
  deps: Pick<RunDeps, 'orm' | 'temporal'>,
  actor: Actor,
  server: McpServer,
  tool: ToolDefinition,
): Promise<{ workflowId: string }> {
  const workflowId = toolInstallWorkflowId(server.id, tool.id);
  if (!(await toolChangeRunning(deps, server.id, tool.id)))
    throw AppError.conflict('not_running', `No install or uninstall of ${tool.name} is running on this server`);
  const em = deps.orm.em.fork();
  audit(em, actor, {
    action: 'server.tool_cancel',
    resourceType: 'server',
    resourceId: server.id,
    changes: { toolId: tool.id, toolName: tool.name, workflowId },
  });
  await em.flush();
  try {
    await toolInstallHandle(deps.temporal, server.id, tool.id).cancel();
  } catch (error) {
    // It ended between the check and the cancel.
    if (error instanceof WorkflowNotFoundError)
      throw AppError.conflict('not_running', `No install or uninstall of ${tool.name} is running on this server`);
    throw error;
  }
  return { workflowId };
}
