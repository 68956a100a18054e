import { ApplicationFailure, Context } from '@temporalio/activity';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { Execution, ExecutionStatus } from '../entities';
import { isFinal } from '../domain/runs/execution-status';
import { finishExecution } from '../domain/runs/finish-execution';
import { acquireSlot, type SlotAnswer } from '../domain/runs/slots';
import { awaitRecording } from '../domain/runs/row-locks';
import { isDatabaseUnavailable, retryWhileDatabaseUnavailable } from '../lib/database-unavailable';
import { parsePromptResult } from '../lib/host-contract';
import { toolResultText } from '../lib/mcp-client';
import type { AgentExecutionResult } from '../workflows/contracts/agent-execution';
import type { ActivityDeps } from './deps';
import type { PromptStream } from './prompt-stream';
import { ServerCallFailed, serverGateway, type ServerGateway } from './server-gateway';
import { isMcpTaskVerdict } from './mcp-task-follower';
import type { InputWait } from '../workflows/contracts/agent-execution';
import { inputTimeoutMessage } from '../workflows/contracts/agent-execution';
import { callOrFollowHost, PromptAttempt, setUpPromptRun, UNRECORDED, type PromptRun } from './prompt-run';
import { cancelledByTemporal, cancelledFailure, withRunControl, type RunControl } from './run-control';

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

/** What the host answered, stored on the row; a refusal or failure becomes the run's error. */
async function outcomeOfAnswer(result: CallToolResult, stream: PromptStream): Promise<PromptOutcome> {
  const text = toolResultText(result.content);
  if (result.isError) {
    const message = /tool execute_prompt not found/i.test(text)
      ? 'the server does not offer execute_prompt'
      : `the agent reported an error: ${text || 'no details'}`;
    await stream.save();
    throw ApplicationFailure.nonRetryable(message, 'ExecutionFailed');
  }
  const structured = parsePromptResult(result.structuredContent);
  const finalOutput = structured.output ?? (stream.output || text);
  await stream.save({
    output: finalOutput,
    tokensUsed: structured.tokensUsed ?? undefined,
    result: result.structuredContent ? result.structuredContent : undefined,
  });
  if (structured.success === false)
    return {
      success: false,
      error: `the agent reported failure${finalOutput ? `: ${finalOutput.slice(0, 500)}` : ''}`,
      tokensUsed: structured.tokensUsed,
    };
  return { success: true, tokensUsed: structured.tokensUsed };
}

/**
 * How an attempt that got no answer from the host ends: the workflow waits for a person, or
 * the run fails, is cancelled, or (an event not recorded) is tried again. Whatever the run
 * wrote so far stays on its row.
 */
async function outcomeOfStop(run: PromptRun, attempt: PromptAttempt, control: RunControl, error: unknown): Promise<WaitingInput> {
  const { stream } = attempt;
  const notRecorded =
    (await run.log.flush().then(
      () => undefined,
      (failure: unknown) => failure,
    )) ?? attempt.questionLost;
  // Temporal's cancel wins: the run ends CANCELLED, not tried again.
  if (notRecorded !== undefined && !cancelledByTemporal()) throw unrecorded(notRecorded);
  if (attempt.waiting && attempt.pause.signal.aborted && !control.aborted()) {
    const runMsUsed = run.execution.runMsUsed + (Date.now() - run.startedAt);
    await stream.save({ runMsUsed });
    return { waitingInput: attempt.waiting, runMsUsed };
  }
  if (attempt.unanswered) {
    await stream.save();
    throw ApplicationFailure.nonRetryable(inputTimeoutMessage(attempt.unanswered.timeoutMs), 'InputTimedOut');
  }
  if (control.aborted()) {
    // Temporal's own cancellation, or the fast path from the cancel route: either way the
    // SDK has sent notifications/cancelled (and tasks/cancel for a task) to the host.
    await stream.save();
    throw cancelledFailure();
  }
  const verdict = error instanceof ServerCallFailed && isMcpTaskVerdict(error.cause) ? error.cause : error;
  if (isMcpTaskVerdict(verdict)) {
    await stream.save();
    throw ApplicationFailure.nonRetryable(verdict.message, 'ExecutionFailed');
  }
  if (error instanceof ServerCallFailed) throw ApplicationFailure.nonRetryable(error.message, 'ExecutionFailed');
  throw error;
}

/**
 * An attempt's work before its host hears of it (loading the run, counting the attempt, the
 * retry's event, the tools it may use), which waits for an unavailable PostgreSQL: a run whose
 * workflow or next attempt starts during an outage runs once it is back. It beats meanwhile,
 * carrying on the previous attempt's details (its MCP task's id), so Temporal starts no other
 * attempt beside it; a cancel stops the wait. Past DATABASE_OUTAGE_GRACE_MS the run fails for
 * good, saying whether its prompt ever reached the host (docs/operations.md, "PostgreSQL
 * unavailable").
 */
async function beforeTheHost<T>(deps: Pick<ActivityDeps, 'config'>, control: RunControl, setUp: () => Promise<T>): Promise<T> {
  const info = Context.current().info;
  const previous = info.heartbeatDetails as unknown;
  control.heartbeatDetails = () => previous;
  const graceMs = deps.config.database.outageGraceMs;
  try {
    return await retryWhileDatabaseUnavailable(setUp, graceMs, control.signal);
  } catch (error) {
    if (!isDatabaseUnavailable(error)) throw error;
    const waited = `PostgreSQL was unavailable for more than ${Math.round(graceMs / 1000)} s (DATABASE_OUTAGE_GRACE_MS)`;
    throw ApplicationFailure.nonRetryable(
      info.attempt === 1
        ? `${waited} before the run could start; its prompt was never sent to the host`
        : `${waited} before attempt ${info.attempt} could reach the host; the run was given up`,
      'ExecutionFailed',
    );
  }
}

/** One attempt at the host, within the run's cancel and heartbeat: the host's answer, or how the attempt stopped. */
async function promptHost(
  deps: ActivityDeps,
  gateway: ServerGateway,
  run: PromptRun,
  control: RunControl,
): Promise<{ answer: CallToolResult; stream: PromptStream } | WaitingInput> {
  const attempt = await PromptAttempt.start(deps, run, control);
  try {
    const answer = await callOrFollowHost(deps, gateway, run, attempt, control);
    await run.log.flush();
    if (attempt.questionLost !== undefined) throw attempt.questionLost;
    return { answer, stream: attempt.stream };
  } catch (error) {
    return await outcomeOfStop(run, attempt, control, error);
  } finally {
    await attempt.stream.finish();
  }
}

export function createExecutionActivities(deps: ActivityDeps) {
  const { orm, running } = deps;
  const gateway = serverGateway(deps);

  return {
    /** Takes one of the agent's `maxConcurrency` slots for this execution, in arrival order. */
    acquireSlot(executionId: string): Promise<SlotAnswer> {
      return acquireSlot(orm.em.fork(), executionId);
    },

    /**
     * Runs the prompt on the agent's server: `execute_prompt` with a progress token. Every
     * progress and message notification becomes one ExecutionEvent (and one realtime event).
     * A server that runs execute_prompt as an MCP task gets it as a task: its id is recorded
     * (row and heartbeat) before waiting, and a later attempt re-attaches to it instead of
     * sending the prompt again (docs/executions.md, "Task-backed runs"). In steps: set-up
     * (prompt-run.ts), calling or following the host (prompt-run.ts, within run-control.ts's
     * cancel and heartbeat), and the outcome (outcomeOfAnswer, outcomeOfStop).
     */
    async executePrompt(executionId: string): Promise<PromptOutcome | WaitingInput> {
      const startedAt = Date.now();
      const ended = await withRunControl(running, executionId, async (control) => {
        const prepared = await beforeTheHost(deps, control, async (): Promise<{ ended: PromptOutcome } | { run: PromptRun }> => {
          const em = orm.em.fork();
          const read = () =>
            em.findOne(Execution, executionId, { populate: ['agent', 'agent.server', 'agent.server.masterTokenCiphertext'] });
          // Its workflow may have started before the row committed (start-execution.ts).
          const execution = (await read()) ?? (await awaitRecording(orm.em, executionId).then(read));
          if (!execution || !execution.agent)
            throw ApplicationFailure.nonRetryable('the execution or its agent no longer exists', 'ExecutionFailed');
          if (isFinal(execution.status))
            return { ended: { success: execution.status === ExecutionStatus.COMPLETED, error: execution.error } };
          return { run: await setUpPromptRun(deps, em, { execution, agent: execution.agent, startedAt }) };
        });
        return 'ended' in prepared ? prepared : await promptHost(deps, gateway, prepared.run, control);
      });
      if ('ended' in ended) return ended.ended;
      return 'waitingInput' in ended ? ended : outcomeOfAnswer(ended.answer, ended.stream);
    },

    /** Records the final state (idempotent), frees the slot, and returns the queued runs to wake. */
    finishExecution(executionId: string, outcome: AgentExecutionResult): Promise<string[]> {
      return finishExecution(orm.em.fork(), executionId, outcome);
    },

    /** finishExecution, also answering the final state the row holds (its workflow ends as that). */
    async finishRun(executionId: string, outcome: AgentExecutionResult): Promise<{ next: string[]; result: AgentExecutionResult }> {
      const em = orm.em.fork();
      const next = await finishExecution(em, executionId, outcome);
      const row = await em.findOne(Execution, executionId);
      const status = row?.status as AgentExecutionResult['status'] | undefined;
      // SKIPPED is an occurrence's status, never a run's: only these end a run's workflow.
      if (!row || !status || !['COMPLETED', 'FAILED', 'CANCELLED', 'TIMED_OUT'].includes(status)) return { next, result: outcome };
      return { next, result: { status, ...(row.error ? { error: row.error } : {}) } };
    },
  };
}
