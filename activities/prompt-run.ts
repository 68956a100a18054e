import { ApplicationFailure, Context } from '@temporalio/activity';
import type { EntityManager } from '@mikro-orm/postgresql';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { Execution, ExecutionStatus, type Agent } from '../entities';
import { ExecutionLog, outputSoFar } from '../domain/runs/execution-log';
import { executionRef } from '../domain/runs/execution-status';
import { fleetAccessFor } from '../domain/runs/run-token';
import { allowedToolsFor } from '../domain/tools/allowed-tools';
import { isDatabaseUnavailable, retryWhileDatabaseUnavailable } from '../lib/database-unavailable';
import { hostToolCall } from '../lib/host-contract';
import type { InputListener, McpConnection } from '../lib/mcp-client';
import { runsAsMcpTask, startMcpToolTask } from '../lib/mcp-tasks';
import { inputTimeoutMessage, type InputWait } from '../workflows/contracts/agent-execution';
import type { ActivityDeps } from './deps';
import { inputAnswerer } from './input-answerer';
import { followMcpTask, isMcpTaskVerdict, reattaching } from './mcp-task-follower';
import { PromptStream } from './prompt-stream';
import type { RunControl } from './run-control';
import type { ServerGateway } from './server-gateway';

/** An MCP task outlives its run's limit by this much, so the outcome of a run that just finished can still be fetched. */
const MCP_TASK_TTL_MARGIN_MS = 3600_000;
/** Creating an MCP task is a quick answer from the host, whatever the run's own limit. */
const MCP_TASK_CREATE_TIMEOUT_MS = 30_000;

export const UNRECORDED = 'an event of the run could not be recorded';

const RETRY_REASON = 'the previous attempt did not finish (worker lost, timed out, or an event not recorded)';

/** One attempt of executePrompt, as `setUpPromptRun` prepared it. */
export interface PromptRun {
  execution: Execution;
  agent: Agent;
  log: ExecutionLog;
  attempt: number;
  call: ReturnType<typeof hostToolCall>;
  /** When this segment of the run started: its waits for a person are not running time. */
  startedAt: number;
  timeoutMs: number;
  /** When the run's time is up (epoch ms). */
  deadline: number;
  /** The MCP task the run follows, once the host made one: on the row and in the heartbeat before any wait. */
  mcpTaskId?: string;
}

/**
 * Set-up: the attempt is counted on the row (a prompt sent again starts its output over, a
 * re-attached task continues it), a retry says so in the log, and the call is built with the
 * tools the agent may use now.
 */
export async function setUpPromptRun(
  deps: Pick<ActivityDeps, 'orm' | 'config'>,
  em: EntityManager,
  { execution, agent, startedAt }: Pick<PromptRun, 'execution' | 'agent' | 'startedAt'>,
): Promise<PromptRun> {
  const ctx = Context.current();
  const attempt = ctx.info.attempt;
  const mcpTaskId = execution.mcpTaskId ?? (ctx.info.heartbeatDetails as { taskId?: string } | undefined)?.taskId;
  // A delegated run's activity also has a schedule-to-close limit (its parent's deadline): whichever ends first.
  const { scheduledTimestampMs, scheduleToCloseTimeoutMs } = ctx.info;
  const scheduledLeft = scheduleToCloseTimeoutMs ? scheduledTimestampMs + scheduleToCloseTimeoutMs - Date.now() : Number.POSITIVE_INFINITY;
  const timeoutMs = Math.max(1000, Math.min(ctx.info.startToCloseTimeoutMs || 30 * 60_000, scheduledLeft, 24 * 3600_000));
  const deadline = Date.now() + timeoutMs;
  // Reads before writes: a set-up tried again after the database came back (executePrompt)
  // writes each once. The two reads go out together (one round trip instead of two). The run
  // token is minted here, as the host is called: it is in no activity input, heartbeat or log.
  const [allowedTools, fleet] = await Promise.all([
    allowedToolsFor(em, agent.id),
    fleetAccessFor(em, deps.config, { executionId: execution.id, organizationId: execution.organization.id, agentId: agent.id }, deadline),
  ]);
  if (attempt > execution.attempt) {
    execution.attempt = attempt;
    if (!mcpTaskId) execution.output = undefined;
    await em.flush();
  }
  const log = new ExecutionLog(deps.orm, executionRef(execution), attempt, deps.config.database.outageGraceMs);
  if (attempt > 1) {
    await log.append('status', {
      status: ExecutionStatus.RUNNING,
      data: mcpTaskId
        ? { reattach: true, taskId: mcpTaskId, attempt, reason: RETRY_REASON }
        : { retry: true, attempt, reason: RETRY_REASON },
    });
  }
  const call = hostToolCall('execute_prompt', {
    executionId: execution.id,
    agentId: agent.id,
    agentName: agent.name,
    prompt: execution.prompt ?? '',
    ...(execution.context ? { context: execution.context } : {}),
    allowedTools,
    ...(execution.context?.responseSchema ? { responseSchema: execution.context.responseSchema as Record<string, unknown> } : {}),
    ...(fleet ? { fleet } : {}),
  });
  return {
    execution,
    agent,
    log,
    attempt,
    call,
    startedAt,
    timeoutMs,
    deadline,
    ...(mcpTaskId ? { mcpTaskId } : {}),
  };
}

/**
 * What the host sends during one attempt (its events into the stream, its questions to the
 * answerer) and what that leaves for the attempt's outcome.
 */
export class PromptAttempt {
  readonly stream: PromptStream;
  readonly answerer: InputListener;
  /** A task's question ends this activity (the workflow waits durably): following stops, the task goes on. */
  readonly pause = new AbortController();
  /** A task's question, recorded: the workflow waits for it. */
  waiting?: InputWait;
  /** A plain call's question (held here) that nobody answered in time. */
  unanswered?: InputWait;
  /** The first question that could not be recorded. */
  questionLost?: unknown;

  private constructor(deps: ActivityDeps, run: PromptRun, control: RunControl) {
    // An event or a question that cannot be recorded stops the run at once and fails this attempt
    // (executions.activities.ts, unrecorded()): a task is left running for the retry to re-attach.
    const onUnrecorded = () => (run.mcpTaskId ? this.pause.abort(new Error(UNRECORDED)) : control.stop(new Error(UNRECORDED)));
    this.stream = new PromptStream(run.log, { ...deps, heartbeat: control.heartbeat, onUnrecorded }, run.execution.todos ?? []);
    this.answerer = inputAnswerer(deps, {
      executionId: run.execution.id,
      signal: control.signal,
      deadline: run.deadline,
      onWaiting: (wait) => {
        this.waiting = wait;
        this.pause.abort();
      },
      onExpired: (wait) => {
        this.unanswered = wait;
        control.stop(new Error(inputTimeoutMessage(wait.timeoutMs)));
      },
      onUnrecorded: (error) => {
        this.questionLost ??= error;
        onUnrecorded();
      },
    });
    control.heartbeatDetails = () =>
      run.mcpTaskId ? { seq: this.stream.state.seq, taskId: run.mcpTaskId } : { seq: this.stream.state.seq };
  }

  /** The attempt's listeners; a re-attached task's output goes on from what the log holds. */
  static async start(deps: ActivityDeps, run: PromptRun, control: RunControl): Promise<PromptAttempt> {
    const attempt = new PromptAttempt(deps, run, control);
    if (run.mcpTaskId) attempt.stream.output = await outputSoFar(deps.orm.em.fork(), run.execution.id);
    return attempt;
  }
}

/**
 * Calls or follows the host: `execute_prompt` as a plain call, or as an MCP task when the server
 * runs it as one, followed to its end, and followed again after a lost connection
 * (`reattaching`). Answers the host's result; anything else is thrown for the caller to translate.
 */
export function callOrFollowHost(
  deps: Pick<ActivityDeps, 'orm' | 'config'>,
  gateway: ServerGateway,
  run: PromptRun,
  attempt: PromptAttempt,
  control: RunControl,
): Promise<CallToolResult> {
  const stopped = () => control.aborted() || attempt.pause.signal.aborted;
  const reattached = (reason: string) =>
    run.log.append('status', {
      status: ExecutionStatus.RUNNING,
      data: { reattach: true, taskId: run.mcpTaskId, attempt: run.attempt, reason },
    });
  const once = () =>
    gateway.withServer(
      run.agent.server,
      ({ connection }) =>
        listening(connection, run, attempt, () => promptOnConnection(deps, connection, run, attempt, control, reattached)),
      {
        // A timed-out prompt ran for the run's limit, not for one MCP request's. A task's verdict
        // is final; a dropped connection is reconnected once and the task followed again.
        timeoutMs: run.timeoutMs,
        canRetry: (error) => !stopped() && !isMcpTaskVerdict(error),
      },
    );
  return reattaching(once, {
    mcpTaskId: () => run.mcpTaskId,
    cancelled: stopped,
    deadline: run.deadline,
    onLost: (error) => reattached(`the connection to the server was lost (${error.message})`),
    signal: control.signal,
  });
}

/**
 * Routes the run's messages and questions on the connection to the attempt while `fn` runs.
 * An attempt lets go of only its own listeners: one Temporal gave up on (a heartbeat timeout)
 * may end after the next attempt of the run started listening on the same connection, and
 * must not leave that one deaf to the task's events.
 */
export async function listening<T>(
  connection: Pick<McpConnection, 'messageListeners' | 'inputListeners'>,
  run: Pick<PromptRun, 'execution' | 'mcpTaskId'>,
  attempt: Pick<PromptAttempt, 'stream' | 'answerer'>,
  fn: () => Promise<T>,
): Promise<T> {
  const executionId = run.execution.id;
  connection.messageListeners.set(executionId, attempt.stream.message);
  connection.inputListeners.set(executionId, attempt.answerer);
  try {
    return await fn();
  } finally {
    if (connection.messageListeners.get(executionId) === attempt.stream.message) connection.messageListeners.delete(executionId);
    for (const key of [executionId, run.mcpTaskId])
      if (key && connection.inputListeners.get(key) === attempt.answerer) connection.inputListeners.delete(key);
  }
}

async function promptOnConnection(
  deps: Pick<ActivityDeps, 'orm' | 'config'>,
  connection: McpConnection,
  run: PromptRun,
  attempt: PromptAttempt,
  control: RunControl,
  onResume: (reason: string) => Promise<unknown>,
): Promise<CallToolResult> {
  const requestTimeoutMs = deps.config.mcp.timeoutMs;
  if (!run.mcpTaskId) {
    const inline = await startAsMcpTask(deps, connection, run, control);
    if (inline) return inline;
  }
  if (run.mcpTaskId) {
    connection.inputListeners.set(run.mcpTaskId, attempt.answerer);
    const { mcpTaskId, deadline } = run;
    return await followMcpTask({
      connection,
      mcpTaskId,
      signal: control.signal,
      pause: attempt.pause.signal,
      deadline,
      requestTimeoutMs,
      onProgress: attempt.stream.progress,
      progressToken: run.execution.id,
      onResume,
    });
  }
  return (await connection.client.callTool(run.call, undefined, {
    signal: control.signal,
    timeout: run.timeoutMs,
    maxTotalTimeout: run.timeoutMs,
    resetTimeoutOnProgress: true,
    onprogress: attempt.stream.progress,
  })) as CallToolResult;
}

/**
 * Sends the prompt as an MCP task when the server runs execute_prompt as one, and records the
 * task's id (`run.mcpTaskId`, the row, the heartbeat) before any wait. Answers the result of a
 * server that answered at once instead; nothing when the prompt is still to be sent (plainly) or followed.
 */
async function startAsMcpTask(
  deps: Pick<ActivityDeps, 'orm' | 'config'>,
  connection: McpConnection,
  run: PromptRun,
  control: RunControl,
): Promise<CallToolResult | undefined> {
  const requestTimeoutMs = deps.config.mcp.timeoutMs;
  if (!(await runsAsMcpTask(connection, 'execute_prompt', requestTimeoutMs))) return undefined;
  const options = { timeoutMs: Math.min(requestTimeoutMs, MCP_TASK_CREATE_TIMEOUT_MS), signal: control.signal };
  const started = await startMcpToolTask(connection.client, run.call, run.execution.id, run.timeoutMs + MCP_TASK_TTL_MARGIN_MS, options);
  if ('result' in started) return started.result;
  run.mcpTaskId = started.task.taskId;
  // Recorded before waiting: from here on, no attempt sends the prompt again. The heartbeat
  // first (it carries the id, and reaches Temporal while PostgreSQL may not be there), then
  // the row, which waits for PostgreSQL like the run's events. A row that still cannot be
  // written fails the attempt as an unrecorded event does: the next one re-attaches to the
  // task through the heartbeat's id, and the task is left running for it.
  control.heartbeat();
  try {
    await retryWhileDatabaseUnavailable(
      () => deps.orm.em.fork().nativeUpdate(Execution, { id: run.execution.id }, { mcpTaskId: run.mcpTaskId }),
      run.log.graceMs,
      control.signal,
    );
  } catch (error) {
    if (!isDatabaseUnavailable(error)) throw error;
    throw ApplicationFailure.retryable(`${UNRECORDED} (its MCP task's id)`, 'EventNotRecorded');
  }
  return undefined;
}
