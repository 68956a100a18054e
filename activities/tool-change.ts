import { CancelledFailure, Context } from '@temporalio/activity';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import type { McpServer, ToolDefinition } from '../entities';
import { AppError } from '../domain/errors';
import { explainHostFailure, toolCommands, versionMatches, type ToolCommands } from '../domain/tools/host-install';
import { hostToolCall, UninstallToolResult } from '../lib/host-contract';
import { toolResultText, type McpConnection } from '../lib/mcp-client';
import { runsAsMcpTask, startMcpToolTask } from '../lib/mcp-tasks';
import type { ToolChangeInput, ToolChangeOutcome } from '../workflows/contracts/tool-install';
import type { ActivityDeps } from './deps';
import { ServerCallFailed } from './server-gateway';
import { followMcpTask, isMcpTaskVerdict } from './mcp-task-follower';
import type { ActivityControl } from './run-control';
import { checkTool, logOf, type ToolDeps } from './tool-check';

/** The longest an install or uninstall call may run on the host (its own limit per command is 5 minutes). */
const CHANGE_CALL_TIMEOUT_MS = 14 * 60_000;

/** The MCP task of a change, when the server runs install_tool/uninstall_tool as one: kept in the heartbeat details, so a retry follows it. */
interface McpTaskRef {
  id?: string;
  /** The progress token (the change's workflow id). */
  token: string;
}

/** One attempt of a change on the host: what its steps share. */
interface ChangeAttempt {
  input: ToolChangeInput;
  attempt: number;
  /** Its cancel and heartbeat (withActivityControl); the beats carry `mcpTask.id`. */
  control: ActivityControl;
  mcpTask: McpTaskRef;
  /** Set just before the change goes out, after which the call is never repeated on another connection. */
  sent: boolean;
}

/** What the host calls established, before it is recorded. */
export interface HostOutcome extends ToolChangeOutcome {
  log: string;
  /** Set when check_tool answered (the version on the row was verified then). */
  verified?: boolean;
}

/**
 * Sends the change: as an MCP task when the server runs the tool as one (its id recorded at
 * once, with a beat; a retry follows the same task, so the command never runs twice), else a plain call.
 */
async function sendChange(
  config: ActivityDeps['config'],
  connection: McpConnection,
  call: ReturnType<typeof hostToolCall>,
  { mcpTask, control }: ChangeAttempt,
): Promise<CallToolResult> {
  const requestTimeoutMs = config.mcp.timeoutMs;
  const signal = control.signal;
  if (!mcpTask.id && (await runsAsMcpTask(connection, call.name, requestTimeoutMs))) {
    const started = await startMcpToolTask(connection.client, call, mcpTask.token, CHANGE_CALL_TIMEOUT_MS + 3600_000, {
      timeoutMs: Math.min(requestTimeoutMs, 30_000),
      signal,
    });
    if ('result' in started) return started.result;
    mcpTask.id = started.task.taskId;
    control.heartbeat();
  }
  if (mcpTask.id)
    return followMcpTask({
      connection,
      mcpTaskId: mcpTask.id,
      signal,
      deadline: Date.now() + CHANGE_CALL_TIMEOUT_MS,
      requestTimeoutMs,
      onProgress: () => undefined,
    });
  return (await connection.client.callTool(call, undefined, {
    signal,
    timeout: CHANGE_CALL_TIMEOUT_MS,
    maxTotalTimeout: CHANGE_CALL_TIMEOUT_MS,
    resetTimeoutOnProgress: true,
  })) as CallToolResult;
}

/**
 * The host side of a change: check_tool first, for every install and for a retry of an
 * uninstall; then install_tool or uninstall_tool; then check_tool to verify. An install whose
 * tool is already there, at a version that satisfies the request, sends nothing: the host
 * would otherwise run `apt-get update && apt-get install git` on a machine that has git. A
 * retry's first check also finds the work of an attempt whose worker was lost after the host
 * finished it. `change.sent` is set just before the change goes out, after which the call is
 * never repeated on another connection.
 */
async function changeOnHost(
  config: ActivityDeps['config'],
  connection: McpConnection,
  commands: ToolCommands,
  change: ChangeAttempt,
): Promise<HostOutcome> {
  const { input, attempt, mcpTask, control } = change;
  const { action, version: wanted } = input;
  const client = connection.client;
  const signal = control.signal;
  // A retry of a change that went out as a task follows that task instead of asking first.
  if (!mcpTask.id && (action === 'install' || attempt > 1)) {
    const before = await checkTool(config, client, commands, signal);
    if (before.answered && action === 'install' && before.installed && versionMatches(before.version, wanted)) {
      // On a retry the earlier attempt may have installed it; on the first attempt it was there before.
      if (attempt > 1) return { status: 'INSTALLED', version: before.version, log: before.log, verified: true, skipped: true };
      const found = `${commands.name}${before.version ? ` ${before.version}` : ''}`;
      return {
        status: 'INSTALLED',
        version: before.version,
        log: `${before.log}[${found} is already installed: the install command was not run]\n`,
        verified: true,
        skipped: true,
        alreadyInstalled: true,
      };
    }
    if (before.answered && action === 'uninstall' && !before.installed)
      return { status: 'NOT_INSTALLED', log: before.log, verified: true, skipped: true };
    // Not there, another version, or no answer (a host without check_tool or commands): the
    // install goes out, and its own answer says what the server can do.
  }
  change.sent = true;
  const call =
    action === 'install'
      ? hostToolCall('install_tool', { name: commands.name, installCommand: commands.installCommand })
      : hostToolCall('uninstall_tool', { name: commands.name, uninstallCommand: commands.uninstallCommand });
  const answer = await sendChange(config, connection, call, change);
  const log =
    action === 'install' ? logOf(answer.structuredContent) : (UninstallToolResult.safeParse(answer.structuredContent).data?.log ?? '');
  if (answer.isError) return { status: 'FAILED', error: explainHostFailure(action, toolResultText(answer.content), log), log };

  const after = await checkTool(config, client, commands, signal);
  if (!after.answered)
    return { status: 'FAILED', error: `the ${action} command ran, but the server could not verify it: ${after.reason}`, log };
  const logs = `${log}${after.log}`;
  const found = after.version ? ` ${after.version}` : '';
  if (action === 'uninstall') {
    if (after.installed)
      return {
        status: 'FAILED',
        error: `the uninstall command succeeded, but ${commands.name}${found} is still there`,
        log: logs,
        verified: true,
      };
    return { status: 'NOT_INSTALLED', log: logs, verified: true };
  }
  if (!after.installed)
    return {
      status: 'FAILED',
      error: `the install command succeeded, but ${commands.name} is not found afterwards (its version command \`${commands.versionCommand}\` fails)`,
      log: logs,
      verified: true,
    };
  if (!versionMatches(after.version, wanted)) {
    return {
      status: 'FAILED',
      error: `${commands.name}${found || ' (version unreadable)'} is installed, not the version ${wanted} asked for`,
      log: logs,
      verified: true,
    };
  }
  return { status: 'INSTALLED', version: after.version, log: logs, verified: true };
}

/**
 * What a change that threw ends with: a cancel as Temporal's CancelledFailure, whatever the
 * error; a version the catalog entry no longer takes, a server that could not be reached or
 * does not install, and an MCP task's verdict as FAILED; anything else fails the attempt.
 */
function outcomeOfFailure(error: unknown, input: ToolChangeInput, control: ActivityControl): HostOutcome {
  if (control.aborted()) throw new CancelledFailure('cancelled');
  // The catalog entry changed since the request was accepted.
  if (error instanceof AppError) return { status: 'FAILED', error: `the catalog entry no longer takes version ${input.version}`, log: '' };
  if (!(error instanceof ServerCallFailed)) throw error;
  if (isMcpTaskVerdict(error.cause)) return { status: 'FAILED', error: error.cause.message, log: '' };
  const unsupported = /tool (install|uninstall|check)_tool not found/i.test(
    `${error.message} ${String((error.cause as Error | undefined)?.message)}`,
  );
  return {
    status: 'FAILED',
    error: unsupported ? 'this server does not support installs (it offers no install_tool)' : error.message,
    log: '',
  };
}

/**
 * The change through the server gateway, within the activity's cancel and heartbeat. A retry
 * reads the change's MCP task back from the heartbeat details (`taskId`) and follows it.
 */
export async function changeThroughServer(
  { config, gateway }: ToolDeps,
  server: McpServer,
  tool: ToolDefinition,
  input: ToolChangeInput,
  control: ActivityControl,
): Promise<HostOutcome> {
  const ctx = Context.current();
  const change: ChangeAttempt = {
    input,
    attempt: ctx.info.attempt,
    control,
    mcpTask: { id: (ctx.info.heartbeatDetails as { taskId?: string } | undefined)?.taskId, token: input.workflowId },
    sent: false,
  };
  control.heartbeatDetails = () => (change.mcpTask.id ? { taskId: change.mcpTask.id } : undefined);
  try {
    const commands = toolCommands(tool, input.version);
    return await gateway.withServer(server, ({ connection }) => changeOnHost(config, connection, commands, change), {
      timeoutMs: CHANGE_CALL_TIMEOUT_MS,
      // Another connection may be tried only while nothing was sent (never install twice),
      // or to follow the change's task again.
      canRetry: (error) => (!change.sent || change.mcpTask.id !== undefined) && !control.aborted() && !isMcpTaskVerdict(error),
    });
  } catch (error) {
    return outcomeOfFailure(error, input, control);
  }
}
