import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  CancelledFailure,
  condition,
  currentUpdateInfo,
  getExternalWorkflowHandle,
  isCancellation,
  ParentClosePolicy,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setCurrentDetails,
  setHandler,
  startChild,
  TimeoutFailure,
  upsertSearchAttributes,
  uuid4,
  workflowInfo,
} from '@temporalio/workflow';
import { defineSearchAttributeKey } from '@temporalio/common';
import type { Activities } from '../activities';
import {
  delegateUpdate,
  DELEGATION_REFUSED,
  executionWorkflowId,
  inputAnsweredSignal,
  inputTimeoutMessage,
  progressQuery,
  progressSignal,
  RUN_FAILURE_TYPES,
  runWaitingSignal,
  slotFreedSignal,
  type AgentExecutionOptions,
  type AgentExecutionResult,
  type DelegateRequest,
  type FinalStatus,
  type InputWait,
  type ProgressSnapshot,
} from './contracts/agent-execution';

/** The `RunStatus` search attribute (lib/search-attributes.ts: workflows may import only types from lib/). */
const RUN_STATUS = defineSearchAttributeKey('RunStatus', 'KEYWORD');

/** Ends a workflow as its run ended (see RUN_FAILURE_TYPES): returns `result` when it completed, else throws. */
export function endWorkflowAs<T>(status: FinalStatus | 'SKIPPED', error: string | undefined, result: T): T {
  if (status === 'COMPLETED' || status === 'SKIPPED') return result;
  // Temporal records a workflow as cancelled only after a cancel request; a run ended
  // CANCELLED otherwise (terminated by its occurrence's overlap policy, say) fails as such.
  if (status === 'CANCELLED' && CancellationScope.current().consideredCancelled)
    throw new CancelledFailure(error ?? 'cancelled by request', [result]);
  throw ApplicationFailure.create({
    type: RUN_FAILURE_TYPES[status],
    message: error ?? `the run ended ${status}`,
    nonRetryable: true,
    details: [result],
  });
}

/**
 * Keeps the workflow's `RunStatus` search attribute in step with the run, for operators'
 * filters (`RunStatus="WAITING_INPUT"`). Off for runs started before it existed, which replay
 * without it.
 */
export function runStatusAttribute(enabled: boolean): (status: string) => void {
  let shown: string | undefined;
  return (status) => {
    if (!enabled || status === shown) return;
    shown = status;
    upsertSearchAttributes([{ key: RUN_STATUS, value: status }]);
  };
}

const { finishExecution, finishRun } = proxyActivities<Activities>({
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

/**
 * Recording a delegated run (the delegate Update's handler): a short transaction, in the
 * workflow task, so the child starts in the same task. Retried: it is idempotent by the Update's id.
 */
const { recordDelegatedRun } = proxyLocalActivities<Activities>({
  startToCloseTimeout: '30s',
  retry: { initialInterval: '500ms', maximumInterval: '10s', nonRetryableErrorTypes: [DELEGATION_REFUSED] },
});

const { cancelChildRuns } = proxyActivities<Activities>({
  startToCloseTimeout: '30s',
  retry: { initialInterval: '500ms', maximumInterval: '10s', maximumAttempts: 5 },
});

/** How long a delegating run's end waits for its cancelled children to record theirs. */
const CHILDREN_SETTLE_MS = 2 * 60_000;
/** A child gets what is left of its parent's time limit: with less than this left, none is started. */
const MIN_CHILD_TIME_MS = 1000;
/**
 * A child's deadline is this much before its parent's: the two are counted on different clocks
 * (the parent's workflow time, the child activity's scheduling), a few ms apart, and the child's
 * end must reach the parent before the parent's own.
 */
const CHILD_DEADLINE_MARGIN_MS = 1000;

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
export async function agentExecution(executionId: string, options: AgentExecutionOptions = {}): Promise<AgentExecutionResult> {
  // Runs started before their workflow's status said what happened replay as they were: no
  // RunStatus, and completed whatever the outcome.
  const tellsStatus = patched('run-status');
  const showStatus = runStatusAttribute(tellsStatus);
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
    // A delegated run's parent is another run, which waits on no answers of its children.
    if (!parent || options.parentExecutionId) return;
    // Runs started before this signal existed replay without it.
    if (!patched('run-waiting-signal')) return;
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
      // A delegated run's activity, retries included, ends by its parent's deadline, counted
      // from its scheduling (a start-to-close limit would begin only once a worker picked it up).
      ...(options.deadlineAt ? { scheduleToCloseTimeout: Math.max(1000, options.deadlineAt - Date.now()) } : {}),
      heartbeatTimeout: '10s',
      // A lost worker (heartbeat timeout) is retried with the same execution id; business
      // failures are non-retryable ApplicationFailures.
      retry: {
        maximumAttempts: 3,
        initialInterval: '1s',
        nonRetryableErrorTypes: ['ExecutionFailed', 'ExecutionCancelled', 'InputTimedOut'],
      },
    });
  const { executePrompt, executeToolCall } = prompting(0);

  // Delegation (issue 22): the MCP endpoint's `delegate` sends this Update. Only runs that
  // received a run token ever get one, so histories from before it never reach this code.
  /** Running time used before the current segment, and when that segment started (undefined while waiting for an answer). */
  let usedMs = 0;
  let runningSince: number | undefined;
  const timeLeft = () =>
    Math.min(
      limitMs - usedMs - (runningSince === undefined ? 0 : Date.now() - runningSince),
      options.deadlineAt ? options.deadlineAt - Date.now() : Number.POSITIVE_INFINITY,
    );
  /** Children still running, and delegations being recorded. */
  const liveChildren = new Set<string>();
  let delegating = 0;
  let delegated = false;
  /** Set once the run has its outcome: it starts no more children. */
  let closing = false;
  // Created in the workflow's root scope: cancelling the run cancels every child started in it
  // (and their own children, down to each host).
  const children = new CancellationScope();
  const refuse = (message: string) => ApplicationFailure.create({ type: DELEGATION_REFUSED, message, nonRetryable: true });
  setHandler(
    delegateUpdate,
    async (request: DelegateRequest) => {
      delegating++;
      delegated = true;
      try {
        const childId = uuid4();
        // Recorded whatever happens to the run meanwhile: a row written is then started or ended, never left QUEUED.
        const run = await CancellationScope.nonCancellable(() =>
          recordDelegatedRun({
            parentExecutionId: executionId,
            childExecutionId: childId,
            delegationKey: currentUpdateInfo()!.id,
            agentId: request.agentId,
            prompt: request.prompt,
            ...(request.context ? { context: request.context } : {}),
            maxChildren: request.maxChildren,
          }),
        );
        if (liveChildren.has(run.executionId)) return { executionId: run.executionId };
        const left = timeLeft() - CHILD_DEADLINE_MARGIN_MS;
        if (closing || children.consideredCancelled || left < MIN_CHILD_TIME_MS) {
          const why = 'the delegating run ended before its child could start';
          await CancellationScope.nonCancellable(() => finishRun(run.executionId, { status: 'CANCELLED', error: why }));
          throw refuse(why);
        }
        const child = await children.run(() =>
          startChild(agentExecution, {
            workflowId: executionWorkflowId(run.executionId),
            args: [
              run.executionId,
              { slotTaken: run.slotTaken, timeoutMs: left, deadlineAt: Date.now() + left, parentExecutionId: executionId },
            ],
            // Terminating the parent (no code of its own runs then) still cancels its children.
            parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
            typedSearchAttributes: run.searchAttributes,
          }),
        );
        liveChildren.add(run.executionId);
        void child.result().then(
          () => liveChildren.delete(run.executionId),
          () => liveChildren.delete(run.executionId),
        );
        return { executionId: run.executionId };
      } catch (error) {
        if (error instanceof ActivityFailure && error.cause instanceof ApplicationFailure && error.cause.type === DELEGATION_REFUSED)
          throw refuse(error.cause.message);
        throw error;
      } finally {
        delegating--;
      }
    },
    {
      // Checked before the Update is accepted (a refusal leaves no trace in the history); the
      // rules that need the database are checked by recordDelegatedRun.
      validator: (request: DelegateRequest) => {
        if (closing || state.status !== 'RUNNING') throw refuse(`the run is ${closing ? 'ending' : state.status}: it cannot delegate now`);
        if (liveChildren.size + delegating >= request.maxChildren)
          throw refuse(
            `Delegation fan-out limit: this run already has ${liveChildren.size + delegating} children running (at most ${request.maxChildren}, DELEGATION_MAX_CHILDREN)`,
          );
        if (timeLeft() - CHILD_DEADLINE_MARGIN_MS < MIN_CHILD_TIME_MS)
          throw refuse("the run's time limit is (nearly) up: a child would have no time left");
      },
    },
  );

  let result: AgentExecutionResult;
  /** The question a task-backed run waits on (no activity runs then), for a cancel to close it on the host. */
  let waitingOn: InputWait | undefined;
  /** Temporal's cancel ended the run, not the run's own activity (see the end below). */
  let cancelledByTemporal = false;
  try {
    setCurrentDetails(summary(state));
    if (!options.slotTaken) showStatus('QUEUED');
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
    showStatus('RUNNING');
    runningSince = Date.now();
    const run = options.tool ? 'executeToolCall' : 'executePrompt';
    let outcome = await (options.tool ? executeToolCall : executePrompt)(executionId);
    let expired: InputWait | undefined;
    while ('waitingInput' in outcome) {
      waitingOn = outcome.waitingInput;
      usedMs = outcome.runMsUsed;
      runningSince = undefined;
      state = { ...state, status: 'WAITING_INPUT' };
      setCurrentDetails(`**WAITING_INPUT** · ${waitingOn.message}${waitingOn.fields.length ? ` (${waitingOn.fields.join(', ')})` : ''}`);
      showStatus('WAITING_INPUT');
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
      showStatus('RUNNING');
      runningSince = Date.now();
      // The answer is in the row: the host asks again on the re-attached task, and gets it from
      // there; a tool run's approval is read from the row by the call itself. (A tool run never
      // waited before approval gates, so no earlier history has a wait here for it.)
      outcome = await prompting(outcome.runMsUsed)[run](executionId);
    }
    if (expired || 'waitingInput' in outcome)
      result = { status: 'TIMED_OUT', error: inputTimeoutMessage((expired ?? waitingOn)!.timeoutMs) };
    else result = outcome.success ? { status: 'COMPLETED' } : { status: 'FAILED', error: outcome.error };
  } catch (error) {
    if (isCancellation(error)) {
      result = { status: 'CANCELLED', error: 'cancelled by request' };
      cancelledByTemporal = true;
    } else if (error instanceof ActivityFailure && error.cause instanceof ApplicationFailure && error.cause.type === 'ExecutionCancelled')
      result = { status: 'CANCELLED', error: 'cancelled by request' };
    else if (error instanceof ActivityFailure && error.cause instanceof ApplicationFailure && error.cause.type === 'InputTimedOut')
      result = { status: 'TIMED_OUT', error: error.cause.message };
    else if (error instanceof ActivityFailure && error.cause instanceof TimeoutFailure)
      result = { status: 'TIMED_OUT', error: `the run did not finish in time (${error.cause.message})` };
    else result = { status: 'FAILED', error: failureMessage(error) };
  }

  closing = true;
  if (delegated) {
    // Children do not outlive their parent's run: those still running are cancelled (down to
    // their hosts), and the run waits, for a while, for them to record their end.
    await CancellationScope.nonCancellable(async () => {
      children.cancel();
      if (liveChildren.size) await cancelChildRuns([...liveChildren]).catch(() => undefined);
      await condition(() => delegating === 0 && liveChildren.size === 0, CHILDREN_SETTLE_MS);
    });
  }

  let ended = result;
  await CancellationScope.nonCancellable(async () => {
    // Nothing follows the task while it waits: stop it on the host, or it would wait there for its TTL.
    // Cancelled by Temporal alone (its UI, `temporal workflow cancel`, a terminated parent's
    // REQUEST_CANCEL), the run closes before its activity hears of it (on a throttled heartbeat),
    // which then finds its workflow gone and lets go of the task as an abandoned attempt: stop it
    // here, durably, rather than in the activity, which may never run again (a lost worker). An
    // activity that ended the run itself (the cancel route's fast path: ExecutionCancelled)
    // has sent tasks/cancel already; a second one, on a task already ended, is answered and ignored.
    if (waitingOn || result.status === 'TIMED_OUT' || (cancelledByTemporal && patched('cancel-remote-on-cancel')))
      await cancelRemoteTask(executionId).catch(() => false);
    let next: string[];
    // The row is the authority: a run its occurrence already ended TIMED_OUT ends so here too.
    if (tellsStatus) ({ next, result: ended } = await finishRun(executionId, result));
    else next = await finishExecution(executionId, result);
    for (const id of next) {
      await getExternalWorkflowHandle(executionWorkflowId(id))
        .signal(slotFreedSignal)
        .catch(() => undefined);
    }
  });
  state = { ...state, status: ended.status };
  setCurrentDetails(summary(state) + (ended.error ? `\n\n${ended.error}` : ''));
  if (!tellsStatus) return result;
  showStatus(ended.status);
  return endWorkflowAs(ended.status, ended.error, ended);
}
