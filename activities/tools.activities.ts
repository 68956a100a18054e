import { ApplicationFailure, CancelledFailure, Context } from '@temporalio/activity';
import type { EntityManager } from '@mikro-orm/postgresql';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { McpServer, ServerTool, ServerToolStatus, ToolDefinition } from '../entities';
import { AppError } from '../domain/errors';
import { explainHostFailure, toolCommands, versionMatches, type ToolCommands } from '../domain/tools/host-install';
import { BUSY_STATUSES, setServerToolState, type ServerToolChange, type ServerToolRef } from '../domain/tools/install-state';
import { CheckToolResult, hostToolCall, InstallToolResult, UninstallToolResult } from '../lib/host-contract';
import { toolResultText, type McpConnection } from '../lib/mcp-client';
import { runsAsMcpTask, startMcpToolTask } from '../lib/mcp-tasks';
import { TOOL_CHANGE_REFUSED, type ToolAction, type ToolChangeInput, type ToolChangeOutcome } from '../workflows/contracts/tool-install';
import type { ActivityDeps } from './deps';
import { ServerCallFailed, serverGateway, type ServerGateway } from './server-gateway';
import { followMcpTask, isMcpTaskVerdict } from './mcp-task-follower';
import { withActivityControl, type ActivityControl } from './run-control';

type McpClient = McpConnection['client'];

/** The longest an install or uninstall call may run on the host (its own limit per command is 5 minutes). */
const CHANGE_CALL_TIMEOUT_MS = 14 * 60_000;
/** Version commands are quick, but a cold `apt` or `npm` may take seconds to answer one. */
const MIN_CHECK_TIMEOUT_MS = 30_000;
/** check_tool calls in flight at once on one server during a drift check. */
const DRIFT_CONCURRENCY = 4;
const LOG_TAIL_CHARS = 4096;

/** What the tool activities use: the database, the MCP timeouts, the log, and the way to a server. */
type ToolDeps = Pick<ActivityDeps, 'orm' | 'config' | 'logger'> & { gateway: ServerGateway };

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

/** A host's answer to check_tool, or why there was none. */
type CheckReading = { answered: true; installed: boolean; version?: string; log: string } | { answered: false; reason: string };
type CheckAnswer = Extract<CheckReading, { answered: true }>;

/** What the host calls established, before it is recorded. */
interface HostOutcome extends ToolChangeOutcome {
  log: string;
  /** Set when check_tool answered (the version on the row was verified then). */
  verified?: boolean;
}

export interface ToolDriftSummary {
  checked: number;
  changed: number;
  vanished: number;
  /** Installed tools the server could not be asked about (unreachable, no check_tool, an error). */
  unchecked: number;
}

function tail(text: string): string {
  return text.length > LOG_TAIL_CHARS ? text.slice(-LOG_TAIL_CHARS) : text;
}

function logOf(structuredContent: unknown): string {
  const parsed = InstallToolResult.pick({ log: true }).safeParse(structuredContent);
  return parsed.success ? parsed.data.log : '';
}

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

/** Runs `work` over `items`, at most `limit` at a time. */
async function eachLimited<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) await work(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
}

async function checkTool(
  config: ActivityDeps['config'],
  client: McpClient,
  commands: ToolCommands,
  signal?: AbortSignal,
): Promise<CheckReading> {
  const checkTimeoutMs = Math.max(config.mcp.timeoutMs, MIN_CHECK_TIMEOUT_MS);
  const call = hostToolCall('check_tool', {
    name: commands.name,
    versionCommand: commands.versionCommand,
    ...(commands.versionRegex ? { versionRegex: commands.versionRegex } : {}),
  });
  const result = (await client.callTool(call, undefined, { signal, timeout: checkTimeoutMs })) as CallToolResult;
  if (result.isError)
    return { answered: false, reason: explainHostFailure('install', toolResultText(result.content), logOf(result.structuredContent)) };
  const reading = CheckToolResult.safeParse(result.structuredContent);
  if (!reading.success) return { answered: false, reason: 'the server answered check_tool without saying whether the tool is installed' };
  return {
    answered: true,
    installed: reading.data.installed,
    ...(reading.data.version ? { version: reading.data.version } : {}),
    log: reading.data.log ?? '',
  };
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

async function loadChange(em: EntityManager, input: Pick<ToolChangeInput, 'serverId' | 'toolId'>) {
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
async function recordOutcome(
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
async function changeThroughServer(
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

/** What the workflow learns of an outcome (the log stays on the row). */
function changeOutcome(outcome: HostOutcome): ToolChangeOutcome {
  return {
    status: outcome.status,
    ...(outcome.version ? { version: outcome.version } : {}),
    ...(outcome.error ? { error: outcome.error } : {}),
    ...(outcome.skipped ? { skipped: true } : {}),
    ...(outcome.alreadyInstalled ? { alreadyInstalled: true } : {}),
  };
}

/** The changeTool activity: the row marked busy, the change on the host, its outcome recorded. */
async function changeTool(deps: ToolDeps, input: ToolChangeInput): Promise<ToolChangeOutcome> {
  const { orm, logger } = deps;
  const ctx = Context.current();
  const em = orm.em.fork();
  const { server, tool, ref } = await loadChange(em, input);
  const busy = input.action === 'install' ? ServerToolStatus.INSTALLING : ServerToolStatus.REMOVING;
  // Written while the host call goes out, so INSTALLING costs the install no round trip;
  // settled before anything else is written, so nothing can overtake it.
  const begun = setServerToolState(orm.em.fork(), ref, { status: busy, workflowId: input.workflowId });
  let outcome: HostOutcome;
  try {
    outcome = await withActivityControl((control) => changeThroughServer(deps, server, tool, input, control));
  } finally {
    await begun.catch(() => undefined);
  }
  // A failed INSTALLING write fails the attempt; the retry asks the host before doing anything.
  await begun;
  await recordOutcome(em, ref, tool, input, outcome);
  logger.info(
    {
      serverId: input.serverId,
      toolId: input.toolId,
      action: input.action,
      status: outcome.status,
      attempt: ctx.info.attempt,
      ...(outcome.alreadyInstalled ? { alreadyInstalled: true } : {}),
    },
    'tool change finished',
  );
  return changeOutcome(outcome);
}

/** The abandonToolChange activity. */
async function abandonToolChange(em: EntityManager, input: ToolChangeInput, reason: string): Promise<ToolChangeOutcome> {
  const server = await em.findOne(McpServer, input.serverId, { fields: ['organization'] });
  const tool = await em.findOne(ToolDefinition, input.toolId, { fields: ['name'] });
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

/** check_tool's reading of each row, a few at a time on the server's one pooled connection; no reading for a row the server could not be asked about. */
async function readInstalledTools(
  { config, logger, gateway }: ToolDeps,
  serverId: string,
  rows: ServerTool[],
): Promise<Map<ServerTool, CheckReading>> {
  const readings = new Map<ServerTool, CheckReading>();
  try {
    await gateway.withServer(rows[0]!.server, ({ connection }) =>
      eachLimited(rows, DRIFT_CONCURRENCY, async (row) => {
        readings.set(
          row,
          await checkTool(config, connection.client, toolCommands(row.tool)).catch((error: unknown) => ({
            answered: false as const,
            reason: String((error as Error).message),
          })),
        );
      }),
    );
  } catch (error) {
    if (!(error instanceof ServerCallFailed)) throw error;
    logger.warn({ serverId, error: error.message }, 'drift check: server not reachable');
  }
  return readings;
}

/** Records what check_tool found of a tool recorded INSTALLED, if the row still says what it said; answers the drift it recorded. */
async function recordDrift(
  em: EntityManager,
  serverId: string,
  row: ServerTool,
  reading: CheckAnswer,
  at: Date,
): Promise<'vanished' | 'changed' | undefined> {
  const ref: ServerToolRef = { organizationId: row.organization.id, serverId, toolId: row.tool.id, toolName: row.tool.name };
  const was = row.installedVersion ?? null;
  const guard = { from: [ServerToolStatus.INSTALLED], installedVersion: was };
  const drift = (kind: string, changes: Record<string, unknown>) => ({
    action: 'server.tool_drift',
    resourceType: 'server',
    resourceId: serverId,
    changes: { toolId: row.tool.id, toolName: row.tool.name, kind, ...changes },
  });
  if (!reading.installed) {
    const reason = `vanished: the server no longer finds ${row.tool.name} (its version command fails; checked ${at.toISOString()})`;
    const done = await setServerToolState(
      em,
      ref,
      {
        status: ServerToolStatus.NOT_INSTALLED,
        installedVersion: null,
        installedAt: null,
        lastError: reason,
        logTail: tail(reading.log) || null,
        checkedAt: at,
      },
      guard,
      drift('vanished', { from: was }),
    );
    return done ? 'vanished' : undefined;
  }
  if ((reading.version ?? null) !== was) {
    const done = await setServerToolState(
      em,
      ref,
      { status: ServerToolStatus.INSTALLED, installedVersion: reading.version ?? null, checkedAt: at },
      guard,
      drift('version_changed', { from: was, to: reading.version ?? null }),
    );
    return done ? 'changed' : undefined;
  }
  await em.nativeUpdate(ServerTool, { id: row.id, status: ServerToolStatus.INSTALLED }, { checkedAt: at });
  return undefined;
}

/** The checkInstalledTools activity. */
async function checkInstalledTools(deps: ToolDeps, serverId: string): Promise<ToolDriftSummary> {
  const { orm, logger } = deps;
  const em = orm.em.fork();
  const rows = await em.find(
    ServerTool,
    { server: serverId, status: ServerToolStatus.INSTALLED },
    { populate: ['tool', 'server', 'server.masterTokenCiphertext'] },
  );
  const summary: ToolDriftSummary = { checked: 0, changed: 0, vanished: 0, unchecked: 0 };
  if (rows.length === 0) return summary;
  const readings = await readInstalledTools(deps, serverId, rows);
  const at = new Date();
  for (const row of rows) {
    const reading = readings.get(row);
    if (!reading?.answered) {
      summary.unchecked++;
      if (reading) logger.warn({ serverId, tool: row.tool.name, reason: reading.reason }, 'drift check: no answer from check_tool');
      continue;
    }
    summary.checked++;
    const drift = await recordDrift(em, serverId, row, reading, at);
    if (drift) summary[drift]++;
  }
  return summary;
}

export function createToolActivities(deps: ActivityDeps) {
  const { orm, config, logger } = deps;
  const toolDeps: ToolDeps = { orm, config, logger, gateway: serverGateway(deps) };

  return {
    /**
     * One install or uninstall on the host, recorded on the tool's row from start (INSTALLING,
     * REMOVING) to end. Heartbeats every second, so a Temporal cancel reaches it and aborts the
     * MCP call (the SDK sends notifications/cancelled, the host stops the command).
     */
    changeTool(input: ToolChangeInput): Promise<ToolChangeOutcome> {
      return changeTool(toolDeps, input);
    },

    /**
     * A change that ended without recording its outcome (cancelled, or out of attempts): FAILED
     * with the reason, if its workflow still owns the row. Otherwise the row says how it ended.
     */
    abandonToolChange(input: ToolChangeInput, reason: string): Promise<ToolChangeOutcome> {
      return abandonToolChange(orm.em.fork(), input, reason);
    },

    /**
     * Drift: asks the server about each tool recorded INSTALLED on it (check_tool, a few at a
     * time on its one pooled connection) and records a tool that vanished (NOT_INSTALLED, with
     * the reason) or whose version changed, each with its event and an audit row.
     */
    checkInstalledTools(serverId: string): Promise<ToolDriftSummary> {
      return checkInstalledTools(toolDeps, serverId);
    },
  };
}
