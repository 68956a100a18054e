import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  condition,
  defineQuery,
  defineSignal,
  getExternalWorkflowHandle,
  isCancellation,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setCurrentDetails,
  setHandler,
  TimeoutFailure,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { InputWait } from '../activities/input-answerer';
import { inputTimeoutMessage } from './input-timeout';
import type { TodoItem } from '../lib/host-contract';

/** What the `progress` query answers and the running activity signals: the run as a viewer sees it. */
export interface ProgressSnapshot {
  status: string;
  todos: TodoItem[];
  outputTail: string;
  seq: number;
}

/** Workflow id of an execution's run: a business id, so a second start of the same run is refused. */
export function executionWorkflowId(executionId: string): string {
  return `execution-${executionId}`;
}

/** Latest progress of the run: status, todo list, the tail of the output, last event seq. */
export const progressQuery = defineQuery<ProgressSnapshot>('progress');
/** Sent by the running activity on a growing interval (domain/runs/progress-throttle.ts) and once at its end, so `progress` and the Web UI summary stay current. */
export const progressSignal = defineSignal<[ProgressSnapshot]>('progress');
/** Sent by a finishing execution of the same agent: a slot may be free. */
export const slotFreedSignal = defineSignal('slotFreed');
/**
 * Sent by the API once a person answered the run's pending input request (the row in
 * execution_inputs is already ANSWERED: the database is the authority, the signal only wakes
 * the workflow up).
 */
export const inputAnsweredSignal = defineSignal<[{ inputId: string }]>('inputAnswered');
/**
 * Sent by a task-backed run to the workflow that started it (a task occurrence) when it starts
 * and stops waiting for a person's answer: the task's `timeoutMs` does not count the wait.
 */
export const runWaitingSignal = defineSignal<[{ executionId: string; waiting: boolean }]>('runWaiting');

type FinalStatus = 'COMPLETED' | 'FAILED' | 'CANCELLED' | 'TIMED_OUT';

export interface AgentExecutionResult {
  status: FinalStatus;
  error?: string;
}

const { finishExecution } = proxyActivities<Activities>({
  startToCloseTimeout: '30s',
  retry: { initialInterval: '500ms', maximumInterval: '10s' },
});

/**
 * Taking a slot is a short database transaction: as a local activity it runs inside the
 * workflow task, so the prompt's activity is scheduled in the same task (one task-queue hop
 * less between the API call and the host receiving the prompt).
 */
const { acquireSlot } = proxyLocalActivities<Activities>({
  startToCloseTimeout: '30s',
  retry: { initialInterval: '500ms', maximumInterval: '10s' },
});

/** Re-checks the queue now and then, in case a wake-up signal was lost. */
const QUEUE_RECHECK = '30s';
/** Re-reads a waiting run's question now and then, in case the answer's signal was lost. */
const INPUT_RECHECK_MS = 5 * 60_000;

/** The waiting run's side activities: short database work, and one best-effort tasks/cancel. */
const { inputStatus, expireRunInput, cancelRemoteTask } = proxyActivities<Activities>({
  startToCloseTimeout: '30s',
  retry: { initialInterval: '500ms', maximumInterval: '10s', maximumAttempts: 5 },
});

function failureMessage(error: unknown): string {
  let current: unknown = error;
  while (current instanceof ActivityFailure && current.cause) current = current.cause;
  if (current instanceof ApplicationFailure || current instanceof TimeoutFailure) return current.message;
  return error instanceof Error ? error.message : String(error);
}

function summary(state: ProgressSnapshot): string {
  const done = state.todos.filter((t) => t.status === 'completed').length;
  const todo = state.todos.length ? ` · todos ${done}/${state.todos.length}` : '';
  const tail = state.outputTail ? `\n\n${state.outputTail.slice(-300)}` : '';
  return `**${state.status}**${todo} · event ${state.seq}${tail}`;
}

/**
 * One prompt run on one agent (workflow id `execution-<executionId>`): wait for a slot (QUEUED,
 * durably, in arrival order) → RUNNING → `execute_prompt` on the agent's server → final state,
 * recorded in a non-cancellable scope so a cancel or failure is never lost.
 */
export interface AgentExecutionOptions {
  timeoutMs?: number;
  /** The API already took a free slot (execution RUNNING) when it created the run. */
  slotTaken?: boolean;
  /** A `kind: tool` task's run: call the run's tool instead of execute_prompt. */
  tool?: boolean;
}

export async function agentExecution(executionId: string, options: AgentExecutionOptions = {}): Promise<AgentExecutionResult> {
  let state: ProgressSnapshot = { status: 'QUEUED', todos: [], outputTail: '', seq: 0 };
  let woken = false;
  setHandler(progressQuery, () => state);
  setHandler(progressSignal, (snapshot) => {
    if (snapshot.seq >= state.seq) {
      state = { ...snapshot, status: state.status === 'RUNNING' ? 'RUNNING' : state.status };
      setCurrentDetails(summary(state));
    }
  });
  setHandler(slotFreedSignal, () => {
    woken = true;
  });
  const answered = new Set<string>();
  setHandler(inputAnsweredSignal, ({ inputId }) => {
    answered.add(inputId);
  });

  /** Tells the task occurrence that started this run (if one did) whether the run waits for an answer. */
  async function tellParent(waiting: boolean): Promise<void> {
    const parent = workflowInfo().parent;
    // Runs started before this signal existed replay without it.
    if (!parent || !patched('run-waiting-signal')) return;
    await getExternalWorkflowHandle(parent.workflowId, parent.runId)
      .signal(runWaitingSignal, { executionId, waiting })
      .catch(() => undefined);
  }

  /** Waits for a person's answer (signal, or the row re-read): true when answered, false when the input timeout passed. */
  async function answerOf(wait: InputWait): Promise<boolean> {
    for (;;) {
      const left = wait.expiresAt - Date.now();
      if (left <= 0) {
        if ((await expireRunInput(wait.inputId)).expired) return false;
        return true;
      }
      if (await condition(() => answered.has(wait.inputId), Math.min(left, INPUT_RECHECK_MS))) return true;
      const status = await inputStatus(wait.inputId);
      if (status !== 'PENDING') return status !== 'EXPIRED';
    }
  }

  const limitMs = options.timeoutMs ?? 30 * 60_000;
  /** The prompt's activity with what is left of the run's limit: waits for an answer do not count. */
  const prompting = (usedMs: number) =>
    proxyActivities<Activities>({
      startToCloseTimeout: Math.max(1000, limitMs - usedMs),
      heartbeatTimeout: '10s',
      // A lost worker (heartbeat timeout) is retried with the same execution id; business
      // failures are non-retryable ApplicationFailures.
      retry: { maximumAttempts: 3, initialInterval: '1s', nonRetryableErrorTypes: ['ExecutionFailed', 'ExecutionCancelled', 'InputTimedOut'] },
    });
  const { executePrompt, executeToolCall } = prompting(0);

  let result: AgentExecutionResult;
  /** The question a task-backed run waits on (no activity runs then), for a cancel to close it on the host. */
  let waitingOn: InputWait | undefined;
  try {
    setCurrentDetails(summary(state));
    for (;;) {
      if (options.slotTaken) break;
      const slot = await acquireSlot(executionId);
      if (slot.started) break;
      if (slot.rejected) throw ApplicationFailure.nonRetryable(slot.rejected, 'ExecutionRejected');
      woken = false;
      await condition(() => woken, QUEUE_RECHECK);
    }
    state = { ...state, status: 'RUNNING' };
    setCurrentDetails(summary(state));
    let outcome = await (options.tool ? executeToolCall : executePrompt)(executionId);
    let expired: InputWait | undefined;
    while ('waitingInput' in outcome) {
      waitingOn = outcome.waitingInput;
      state = { ...state, status: 'WAITING_INPUT' };
      setCurrentDetails(`**WAITING_INPUT** · ${waitingOn.message}${waitingOn.fields.length ? ` (${waitingOn.fields.join(', ')})` : ''}`);
      await tellParent(true);
      const answeredInTime = await answerOf(waitingOn);
      await tellParent(false);
      if (!answeredInTime) {
        expired = waitingOn;
        break;
      }
      waitingOn = undefined;
      state = { ...state, status: 'RUNNING' };
      setCurrentDetails(summary(state));
      // The answer is in the row: the host asks again on the re-attached task, and gets it from there.
      outcome = await prompting(outcome.runMsUsed).executePrompt(executionId);
    }
    if (expired || 'waitingInput' in outcome) result = { status: 'TIMED_OUT', error: inputTimeoutMessage((expired ?? waitingOn)!.timeoutMs) };
    else result = outcome.success ? { status: 'COMPLETED' } : { status: 'FAILED', error: outcome.error };
  } catch (error) {
    if (isCancellation(error)) result = { status: 'CANCELLED', error: 'cancelled by request' };
    else if (error instanceof ActivityFailure && error.cause instanceof ApplicationFailure && error.cause.type === 'ExecutionCancelled') result = { status: 'CANCELLED', error: 'cancelled by request' };
    else if (error instanceof ActivityFailure && error.cause instanceof ApplicationFailure && error.cause.type === 'InputTimedOut') result = { status: 'TIMED_OUT', error: error.cause.message };
    else if (error instanceof ActivityFailure && error.cause instanceof TimeoutFailure) result = { status: 'TIMED_OUT', error: `the run did not finish in time (${error.cause.message})` };
    else result = { status: 'FAILED', error: failureMessage(error) };
  }

  await CancellationScope.nonCancellable(async () => {
    // Nothing follows the task while it waits: stop it on the host, or it would wait there for its TTL.
    if (waitingOn || result.status === 'TIMED_OUT') await cancelRemoteTask(executionId).catch(() => false);
    const next = await finishExecution(executionId, result);
    for (const id of next) {
      await getExternalWorkflowHandle(executionWorkflowId(id))
        .signal(slotFreedSignal)
        .catch(() => undefined);
    }
  });
  state = { ...state, status: result.status };
  setCurrentDetails(summary(state) + (result.error ? `\n\n${result.error}` : ''));
  return result;
}
