import { ErrorCode, McpError, type ElicitResult } from '@modelcontextprotocol/sdk/types.js';
import { ExecutionInputStatus, type ExecutionInput } from '../entities';
import { expireInput, findInput, markInputDelivered, requestInput } from '../domain/runs/inputs';
import type { InputListener } from '../lib/mcp-client';
import type { InputWait } from '../workflows/contracts/agent-execution';
import type { ActivityDeps } from './deps';

/** What the workflow needs of a recorded question to wait for it. */
export function inputWaitOf(input: ExecutionInput): InputWait {
  return {
    inputId: input.id,
    message: input.message,
    fields: Object.keys((input.requestedSchema as { properties?: object }).properties ?? {}),
    expiresAt: input.expiresAt.getTime(),
    timeoutMs: input.expiresAt.getTime() - input.createdAt.getTime(),
  };
}

export interface InputAnswererOptions {
  executionId: string;
  /** The run's own abort (cancel, Temporal cancellation). */
  signal: AbortSignal;
  /** When the run's time is up (epoch ms): a plain call cannot hold a question beyond it. */
  deadline: number;
  /** Task mode: the question is recorded; stop following the task, the workflow waits durably. */
  onWaiting: (wait: InputWait) => void;
  /** Plain mode: nobody answered within the input timeout. */
  onExpired: (wait: InputWait) => void;
  /** The question could not be recorded (its transaction failed): the attempt fails, and the retry meets the question again. */
  onUnrecorded: (error: unknown) => void;
}

/** How often a held plain call re-reads its question, in case the control channel's notice was missed. */
const REREAD_MS = 2000;

/** Thrown to the host while the run waits: the task's question stays pending on the host and is asked again on the next tasks/result. */
const NOT_YET = () => new McpError(ErrorCode.InternalError, 'waiting for a person to answer; ask again on the next tasks/result');

const CANCEL: ElicitResult = { action: 'cancel' };

/**
 * The run's end of the host's questions (docs/executions.md, "Input requests"). Every question
 * goes through `requestInput`, so a question asked again maps to the same row, and one a person
 * already answered is answered at once from the row (that is how a resumed task gets its answer).
 *
 * An unanswered question of a task ends the activity (`onWaiting`): nothing waits in this
 * process, so a worker restart changes nothing. A plain call cannot be resumed: its question is
 * held here, while this worker lives, until an answer, the input timeout or the run's limit.
 */
export function inputAnswerer(
  deps: Pick<ActivityDeps, 'orm' | 'config' | 'logger' | 'running'>,
  options: InputAnswererOptions,
): InputListener {
  const { executionId } = options;
  return async (params, context) => {
    if (!('requestedSchema' in params)) return { action: 'decline' };
    const em = deps.orm.em.fork();
    const outcome = await requestInput(
      em,
      {
        executionId,
        message: params.message,
        requestedSchema: params.requestedSchema as Record<string, unknown>,
        ...(context.mcpTaskId ? { taskId: context.mcpTaskId } : {}),
      },
      deps.config.executions.inputTimeoutMs,
    ).catch((error: unknown) => {
      // Not left to the host: a task's question would wait there unseen until the run's limit.
      deps.logger.error({ err: error, executionId }, 'could not record an input request');
      options.onUnrecorded(error);
      throw error;
    });
    if (outcome.state === 'refused') {
      deps.logger.info({ executionId, reason: outcome.reason }, 'input request declined');
      return { action: 'decline' };
    }
    if (outcome.state === 'answered') {
      await markInputDelivered(em, outcome.input.id);
      return outcome.answer as ElicitResult;
    }
    const wait = inputWaitOf(outcome.input);
    if (context.mcpTaskId) {
      options.onWaiting(wait);
      throw NOT_YET();
    }
    return hold(deps, wait, options, context.signal);
  };
}

/** A plain call's question: waits for the row to be answered, woken by the control channel or every 2 s. */
async function hold(
  deps: Pick<ActivityDeps, 'orm' | 'running'>,
  wait: InputWait,
  options: InputAnswererOptions,
  withdrawn: AbortSignal,
): Promise<ElicitResult> {
  const stop = AbortSignal.any([options.signal, withdrawn]);
  for (;;) {
    const row = await findInput(deps.orm.em, wait.inputId);
    if (row?.status === ExecutionInputStatus.ANSWERED) {
      await markInputDelivered(deps.orm.em.fork(), row.id);
      return { action: row.action!, ...(row.content ? { content: row.content as ElicitResult['content'] } : {}) };
    }
    if (row?.status !== ExecutionInputStatus.PENDING || stop.aborted) return CANCEL;
    const now = Date.now();
    if (now >= wait.expiresAt) {
      const expired = await expireInput(deps.orm.em.fork(), wait.inputId);
      if (expired.expired) {
        options.onExpired(wait);
        return CANCEL;
      }
      continue;
    }
    // The run's limit ends the call anyway; the question is closed with the run.
    if (now >= options.deadline) return CANCEL;
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        unsubscribe();
        stop.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, Math.min(REREAD_MS, wait.expiresAt - now, Math.max(0, options.deadline - now)));
      const unsubscribe = deps.running.onInputAnswered(options.executionId, done);
      stop.addEventListener('abort', done, { once: true });
    });
  }
}
