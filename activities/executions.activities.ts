import { ApplicationFailure, CancelledFailure, Context } from '@temporalio/activity';
import type { EntityManager } from '@mikro-orm/postgresql';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { Execution, ExecutionStatus } from '../entities';
import { ExecutionLog, outputSoFar } from '../domain/runs/execution-log';
import { executionRef, isFinal } from '../domain/runs/execution-status';
import { finishExecution } from '../domain/runs/finish-execution';
import { acquireSlot, type SlotAnswer } from '../domain/runs/slots';
import { allowedToolsFor } from '../domain/tools/allowed-tools';
import { hostToolCall, parsePromptResult } from '../lib/host-contract';
import { toolResultText } from '../lib/mcp-client';
import { runsAsMcpTask, startMcpToolTask } from '../lib/mcp-tasks';
import type { AgentExecutionResult } from '../workflows/agent-execution.workflow';
import type { ActivityDeps } from './deps';
import { PromptStream } from './prompt-stream';
import { ServerCallFailed, serverGateway } from './server-gateway';
import { followMcpTask, isMcpTaskVerdict, reattaching } from './mcp-task-follower';
import { inputAnswerer, type InputWait } from './input-answerer';
import { inputTimeoutMessage } from '../workflows/input-timeout';

/** A task outlives its run's limit by this much, so the outcome of a run that just finished can still be fetched. */
const TASK_TTL_MARGIN_MS = 3600_000;
/** Creating a task is a quick answer from the host, whatever the run's own limit. */
const TASK_CREATE_TIMEOUT_MS = 30_000;

const UNRECORDED = 'an event of the run could not be recorded';

/**
 * The attempt ends without an event it could not record (after the log's own retries), as a
 * retryable failure, so Temporal tries it again: a task-backed run re-attaches to its task,
 * which sends only what it has not sent yet, so nothing the log holds comes twice; a plain run
 * was cancelled on the host and its prompt is sent again, its events logged as the new attempt.
 * The database's code only: its message quotes the statement and its values.
 */
function unrecorded(error: unknown): ApplicationFailure {
  const code = (error as { code?: unknown }).code;
  return ApplicationFailure.retryable(`${UNRECORDED}${typeof code === 'string' ? ` (database error ${code})` : ''}`, 'EventNotRecorded');
}

export interface PromptOutcome {
  success: boolean;
  error?: string;
  tokensUsed?: number;
}

/** A task-backed run's host asked a person something: the workflow waits for the answer, then runs `executePrompt` again. */
export interface WaitingInput {
  waitingInput: InputWait;
  /** The run's running time so far (waits excluded): the next segment gets the rest of the run's limit. */
  runMsUsed: number;
}

export function createExecutionActivities(deps: ActivityDeps) {
  const { orm, running } = deps;
  const gateway = serverGateway(deps);

  /** What the host answered, stored on the row; a refusal or failure becomes the run's error. */
  async function recordAnswer(executionId: string, result: CallToolResult, stream: PromptStream): Promise<PromptOutcome> {
    const text = toolResultText(result.content);
    if (result.isError) {
      const message = /tool execute_prompt not found/i.test(text) ? 'the server does not offer execute_prompt' : `the agent reported an error: ${text || 'no details'}`;
      await orm.em.fork().nativeUpdate(Execution, { id: executionId }, { output: stream.output || undefined, todos: stream.state.todos });
      throw ApplicationFailure.nonRetryable(message, 'ExecutionFailed');
    }
    const structured = parsePromptResult(result.structuredContent);
    const finalOutput = structured.output ?? (stream.output || text);
    await orm.em.fork().nativeUpdate(
      Execution,
      { id: executionId },
      { output: finalOutput, tokensUsed: structured.tokensUsed ?? undefined, result: result.structuredContent ? result.structuredContent : undefined, todos: stream.state.todos },
    );
    if (structured.success === false) return { success: false, error: `the agent reported failure${finalOutput ? `: ${finalOutput.slice(0, 500)}` : ''}`, tokensUsed: structured.tokensUsed };
    return { success: true, tokensUsed: structured.tokensUsed };
  }

  return {
    /** Takes one of the agent's `maxConcurrency` slots for this execution, in arrival order. */
    acquireSlot(executionId: string): Promise<SlotAnswer> {
      return acquireSlot(orm.em.fork() as EntityManager, executionId);
    },

    /**
     * Runs the prompt on the agent's server: `execute_prompt` with a progress token. Every
     * progress and message notification becomes one ExecutionEvent (and one realtime event).
     * A server that runs execute_prompt as an MCP task gets it as a task: its id is recorded
     * (row and heartbeat) before waiting, and a later attempt re-attaches to it instead of
     * sending the prompt again (docs/executions.md, "Task-backed runs").
     */
    async executePrompt(executionId: string): Promise<PromptOutcome | WaitingInput> {
      const ctx = Context.current();
      const segmentStartedAt = Date.now();
      const attempt = ctx.info.attempt;
      const em = orm.em.fork() as EntityManager;
      const execution = await em.findOne(Execution, executionId, { populate: ['agent', 'agent.server', 'agent.server.masterTokenCiphertext'] });
      if (!execution || !execution.agent) throw ApplicationFailure.nonRetryable('the execution or its agent no longer exists', 'ExecutionFailed');
      if (isFinal(execution.status)) return { success: execution.status === ExecutionStatus.COMPLETED, error: execution.error };
      const agent = execution.agent;
      let taskId = execution.mcpTaskId ?? (ctx.info.heartbeatDetails as { taskId?: string } | undefined)?.taskId;
      if (attempt > execution.attempt) {
        execution.attempt = attempt;
        // A re-attached task continues its output; a prompt sent again starts it over.
        if (!taskId) execution.output = undefined;
        await em.flush();
      }
      const log = new ExecutionLog(orm, executionRef(execution), attempt);
      if (attempt > 1) {
        await log.append(
          'status',
          taskId
            ? { status: ExecutionStatus.RUNNING, data: { reattach: true, taskId, attempt, reason: 'the previous attempt did not finish (worker lost, timed out, or an event not recorded)' } }
            : { status: ExecutionStatus.RUNNING, data: { retry: true, attempt, reason: 'the previous attempt did not finish (worker lost, timed out, or an event not recorded)' } },
        );
      }
      const allowedTools = await allowedToolsFor(em, agent.id);
      const call = hostToolCall('execute_prompt', {
        executionId,
        agentId: agent.id,
        agentName: agent.name,
        prompt: execution.prompt ?? '',
        ...(execution.context ? { context: execution.context } : {}),
        allowedTools,
        ...(execution.context?.responseSchema ? { responseSchema: execution.context.responseSchema as Record<string, unknown> } : {}),
      });

      const beat = (seq: number) => ctx.heartbeat(taskId ? { seq, taskId } : { seq });
      const controller = running.register(executionId);
      // A task's question ends this activity (the workflow waits durably); a plain call's is held here.
      const pause = new AbortController();
      // An event or a question that cannot be recorded stops the run at once and fails this attempt (see unrecorded()).
      let questionLost: unknown;
      const onUnrecorded = () => {
        if (taskId) pause.abort(new Error(UNRECORDED));
        else controller.abort(new Error(UNRECORDED));
      };
      const stream = new PromptStream(log, { ...deps, heartbeat: beat, onUnrecorded }, execution.todos ?? []);
      if (taskId) stream.output = await outputSoFar(em, executionId);
      const cancelled = () => controller.signal.aborted;
      const onTemporalCancel = () => controller.abort(new Error('cancelled'));
      ctx.cancellationSignal.addEventListener('abort', onTemporalCancel);
      const heartbeat = setInterval(() => beat(stream.state.seq), 1000);
      const timeoutMs = Math.max(1000, Math.min(ctx.info.startToCloseTimeoutMs || 30 * 60_000, 24 * 3600_000));
      const deadline = Date.now() + timeoutMs;
      const requestTimeoutMs = deps.config.mcp.timeoutMs;
      let waiting: InputWait | undefined;
      let unanswered: InputWait | undefined;
      const answerer = inputAnswerer(deps, {
        executionId,
        signal: controller.signal,
        deadline,
        onWaiting: (wait) => {
          waiting = wait;
          pause.abort();
        },
        onExpired: (wait) => {
          unanswered = wait;
          controller.abort(new Error(inputTimeoutMessage(wait.timeoutMs)));
        },
        onUnrecorded: (error) => {
          questionLost ??= error;
          onUnrecorded();
        },
      });
      const stopped = () => cancelled() || pause.signal.aborted;
      const reattached = (reason: string) => log.append('status', { status: ExecutionStatus.RUNNING, data: { reattach: true, taskId, attempt, reason } });
      const attemptOnce = () =>
        gateway.withServer(
          agent.server,
          async ({ connection }) => {
            connection.messageListeners.set(executionId, stream.message);
            connection.inputListeners.set(executionId, answerer);
            try {
              if (!taskId && (await runsAsMcpTask(connection, 'execute_prompt', requestTimeoutMs))) {
                const started = await startMcpToolTask(connection.client, call, executionId, timeoutMs + TASK_TTL_MARGIN_MS, { timeoutMs: Math.min(requestTimeoutMs, TASK_CREATE_TIMEOUT_MS), signal: controller.signal });
                if ('result' in started) return started.result;
                taskId = started.task.taskId;
                // Recorded before waiting: from here on, no attempt sends the prompt again.
                await orm.em.fork().nativeUpdate(Execution, { id: executionId }, { mcpTaskId: taskId });
                beat(stream.state.seq);
              }
              if (taskId) {
                connection.inputListeners.set(taskId, answerer);
                return await followMcpTask({ connection, mcpTaskId: taskId, signal: controller.signal, pause: pause.signal, deadline, requestTimeoutMs, onProgress: stream.progress, progressToken: executionId, onResume: reattached });
              }
              return (await connection.client.callTool(call, undefined, {
                signal: controller.signal,
                timeout: timeoutMs,
                maxTotalTimeout: timeoutMs,
                resetTimeoutOnProgress: true,
                onprogress: stream.progress,
              })) as CallToolResult;
            } finally {
              connection.messageListeners.delete(executionId);
              for (const key of [executionId, taskId]) if (key && connection.inputListeners.get(key) === answerer) connection.inputListeners.delete(key);
            }
          },
          // A timed-out prompt ran for the run's limit, not for one MCP request's. A task's
          // verdict is final; a dropped connection is reconnected once and the task followed again.
          { timeoutMs, canRetry: (error) => !stopped() && !isMcpTaskVerdict(error) },
        );
      let result: CallToolResult;
      try {
        result = await reattaching(attemptOnce, {
          mcpTaskId: () => taskId,
          cancelled: stopped,
          deadline,
          onLost: (error) => reattached(`the connection to the server was lost (${error.message})`),
          signal: controller.signal,
        });
        await log.flush();
        if (questionLost !== undefined) throw questionLost;
      } catch (error) {
        const notRecorded =
          (await log.flush().then(
            () => undefined,
            (failure: unknown) => failure,
          )) ?? questionLost;
        // Temporal's cancel wins: the run ends CANCELLED, not tried again.
        if (notRecorded !== undefined && !ctx.cancellationSignal.aborted) throw unrecorded(notRecorded);
        if (waiting && pause.signal.aborted && !cancelled()) {
          const runMsUsed = execution.runMsUsed + (Date.now() - segmentStartedAt);
          await orm.em.fork().nativeUpdate(Execution, { id: executionId }, { output: stream.output || undefined, todos: stream.state.todos, runMsUsed });
          return { waitingInput: waiting, runMsUsed };
        }
        if (unanswered) {
          await orm.em.fork().nativeUpdate(Execution, { id: executionId }, { output: stream.output || undefined, todos: stream.state.todos });
          throw ApplicationFailure.nonRetryable(inputTimeoutMessage(unanswered.timeoutMs), 'InputTimedOut');
        }
        if (cancelled()) {
          // Temporal's own cancellation, or the fast path from the cancel route: either way the
          // SDK has sent notifications/cancelled (and tasks/cancel for a task) to the host.
          await orm.em.fork().nativeUpdate(Execution, { id: executionId }, { output: stream.output || undefined, todos: stream.state.todos });
          if (ctx.cancellationSignal.aborted) throw new CancelledFailure('cancelled');
          throw ApplicationFailure.nonRetryable('cancelled by request', 'ExecutionCancelled');
        }
        const verdict = error instanceof ServerCallFailed && isMcpTaskVerdict(error.cause) ? error.cause : error;
        if (isMcpTaskVerdict(verdict)) {
          await orm.em.fork().nativeUpdate(Execution, { id: executionId }, { output: stream.output || undefined, todos: stream.state.todos });
          throw ApplicationFailure.nonRetryable(verdict.message, 'ExecutionFailed');
        }
        if (error instanceof ServerCallFailed) throw ApplicationFailure.nonRetryable(error.message, 'ExecutionFailed');
        throw error;
      } finally {
        clearInterval(heartbeat);
        ctx.cancellationSignal.removeEventListener('abort', onTemporalCancel);
        running.unregister(executionId, controller);
        await stream.finish();
      }
      return recordAnswer(executionId, result, stream);
    },

    /** Records the final state (idempotent), frees the slot, and returns the queued runs to wake. */
    finishExecution(executionId: string, outcome: AgentExecutionResult): Promise<string[]> {
      return finishExecution(orm.em.fork() as EntityManager, executionId, outcome);
    },

    /** finishExecution, also answering the final state the row holds (its workflow ends as that). */
    async finishRun(executionId: string, outcome: AgentExecutionResult): Promise<{ next: string[]; result: AgentExecutionResult }> {
      const em = orm.em.fork() as EntityManager;
      const next = await finishExecution(em, executionId, outcome);
      const row = await em.findOne(Execution, executionId);
      const status = row?.status as AgentExecutionResult['status'] | undefined;
      // SKIPPED is an occurrence's status, never a run's: only these end a run's workflow.
      if (!row || !status || !['COMPLETED', 'FAILED', 'CANCELLED', 'TIMED_OUT'].includes(status)) return { next, result: outcome };
      return { next, result: { status, ...(row.error ? { error: row.error } : {}) } };
    },
  };
}
