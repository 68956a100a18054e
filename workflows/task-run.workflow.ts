import {
  CancellationScope,
  ChildWorkflowFailure,
  condition,
  executeChild,
  getExternalWorkflowHandle,
  isCancellation,
  patched,
  proxyLocalActivities,
  setCurrentDetails,
  setHandler,
  sleep,
  TerminatedFailure,
  uuid4,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import { agentExecution, endWorkflowAs, runStatusAttribute } from './agent-execution.workflow';
import { executionWorkflowId, runResultOfFailure, runWaitingSignal, slotFreedSignal } from './contracts/agent-execution';
import {
  occurrenceWakeSignal,
  type AttemptOutcome,
  type OccurrenceRequest,
  type OccurrenceStep,
  type TaskRunInput,
  type TaskRunResult,
  type Wakeups,
} from './contracts/task-run';

const { beginOccurrence, resumeOccurrence, retryOccurrence, settleAttempt, timeOutRun, endOccurrence } = proxyLocalActivities<Activities>({
  startToCloseTimeout: '30s',
  retry: { initialInterval: '500ms', maximumInterval: '10s' },
});

/** A waiting occurrence re-checks on its own this often (doubling), in case a wake-up was lost. */
const WAIT_RECHECK_MS = { first: 1000, max: 30_000 };

function retryDelayMs(retry: number): number {
  return Math.min(1000 * 2 ** (retry - 1), 60_000);
}

/** The time the schedule meant this occurrence for (set by Temporal on the workflows a schedule starts). */
function scheduledStartTime(): string | undefined {
  const info = workflowInfo();
  const typed = info.typedSearchAttributes.getAll().find((pair) => pair.key.name === 'TemporalScheduledStartTime')?.value;
  if (typed instanceof Date) return typed.toISOString();
  const match = /-(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z)$/.exec(info.workflowId);
  return match?.[1];
}

async function wake(wakeups: Wakeups): Promise<void> {
  for (const id of wakeups.slotFreed)
    await getExternalWorkflowHandle(executionWorkflowId(id))
      .signal(slotFreedSignal)
      .catch(() => undefined);
  for (const id of wakeups.taskRuns)
    await getExternalWorkflowHandle(id)
      .signal(occurrenceWakeSignal)
      .catch(() => undefined);
}

/** The current attempt's waits for a person's answer (runWaitingSignal): they do not count against `timeoutMs`. */
interface AnswerWaits {
  executionId?: string;
  /** Workflow time the wait going on began; undefined: not waiting. */
  since?: number;
  /** Milliseconds waited in waits that ended. */
  totalMs: number;
  /** Set by the signal, for the timer loop to look again. */
  changed: boolean;
}

/**
 * Resolves true when the child settles within `timeoutMs` of running time, false when that
 * time passed first. The clock stops while the run waits for an answer.
 */
async function settledInTime(settled: () => boolean, timeoutMs: number, waits: AnswerWaits): Promise<boolean> {
  const began = Date.now();
  for (;;) {
    waits.changed = false;
    if (waits.since !== undefined) {
      await condition(() => settled() || waits.changed);
    } else {
      const left = timeoutMs - (Date.now() - began - waits.totalMs);
      if (left <= 0) return false;
      await condition(() => settled() || waits.changed, left);
    }
    if (settled()) return true;
  }
}

/** One attempt as a child run, cut at `timeoutMs` of running time: the run is then recorded TIMED_OUT and its child cancelled. */
async function runAttempt(step: Extract<OccurrenceStep, { next: 'run' }>, waits: AnswerWaits): Promise<AttemptOutcome> {
  Object.assign(waits, { executionId: step.executionId, since: undefined, totalMs: 0, changed: false });
  const scope = new CancellationScope();
  let settled = false;
  const child = scope
    .run(() =>
      executeChild(agentExecution, {
        workflowId: executionWorkflowId(step.executionId),
        // The child's own activity limit stays above the task's, which this workflow applies.
        args: [
          step.executionId,
          { slotTaken: step.slotTaken, tool: step.tool, ...(step.timeoutMs ? { timeoutMs: step.timeoutMs + 60_000 } : {}) },
        ],
        typedSearchAttributes: step.searchAttributes,
      }),
    )
    .then(
      (result): AttemptOutcome => result,
      (error: unknown): AttemptOutcome => {
        // Terminated by a newer occurrence (TERMINATE_OTHER), which recorded why.
        if (error instanceof ChildWorkflowFailure && error.cause instanceof TerminatedFailure)
          return { status: 'CANCELLED', error: 'terminated' };
        // A run that failed or timed out fails its workflow, with its result in the failure.
        const ended = error instanceof ChildWorkflowFailure ? runResultOfFailure(error.cause) : undefined;
        if (ended) return ended;
        if (isCancellation(error)) return { status: 'CANCELLED', error: 'cancelled by request' };
        return { status: 'FAILED', error: error instanceof Error ? error.message : String(error) };
      },
    )
    .finally(() => {
      settled = true;
    });
  if (step.timeoutMs) {
    let inTime: boolean;
    try {
      inTime = await settledInTime(() => settled, step.timeoutMs, waits);
    } catch (error) {
      // Cancelled: the child is being cancelled too; it must record its end before this
      // workflow closes (closing would terminate it, leaving its slot taken).
      await CancellationScope.nonCancellable(() => child);
      throw error;
    }
    if (!inTime) {
      await CancellationScope.nonCancellable(() => timeOutRun(step.executionId, step.timeoutMs!));
      scope.cancel();
      await CancellationScope.nonCancellable(() => child);
      return { status: 'TIMED_OUT', error: `the run did not finish within ${step.timeoutMs} ms (the task's timeoutMs)` };
    }
  }
  return child;
}

/**
 * One occurrence of a task (domain/tasks/occurrences.ts holds its rules): decide it against the
 * task's overlap policy and its other runs, wait for its turn when the policy buffers, resolve
 * the agent, run it as a child `agentExecution` within the task's `timeoutMs`, retry a FAILED
 * or TIMED_OUT run up to `maxRetries` times as new linked executions, and wake the next
 * occurrence waiting behind it. A cancel of the workflow is a cancel of the occurrence.
 */
export async function taskRun(input: TaskRunInput): Promise<TaskRunResult> {
  // Occurrences started before their workflow's status said what happened replay as they were.
  const tellsStatus = patched('run-status');
  const { workflowId } = workflowInfo();
  let woken = false;
  setHandler(occurrenceWakeSignal, () => {
    woken = true;
  });
  const waits: AnswerWaits = { totalMs: 0, changed: false };
  setHandler(runWaitingSignal, ({ executionId, waiting }) => {
    // A signal from an attempt that is over (or a repeat) changes nothing.
    if (executionId !== waits.executionId || waiting === (waits.since !== undefined)) return;
    if (waiting) waits.since = Date.now();
    else {
      waits.totalMs += Date.now() - waits.since!;
      waits.since = undefined;
    }
    waits.changed = true;
  });
  const request: OccurrenceRequest = {
    taskId: input.taskId,
    executionId: input.executionId ?? uuid4(),
    trigger: input.trigger,
    taskRunWorkflowId: workflowId,
    ...(input.trigger === 'schedule' ? { scheduledFor: scheduledStartTime() } : {}),
    ...(input.requestedBy ? { requestedBy: input.requestedBy } : {}),
  };
  const say = (text: string) => setCurrentDetails(`**task ${input.taskId}** · ${input.trigger}\n\n${text}`);

  let current = request.executionId;
  let attempts = 0;
  let outcome: AttemptOutcome = { status: 'FAILED', error: 'not decided' };
  try {
    say('deciding');
    let step = await beginOccurrence(request);
    for (let retry = 0; ; retry++) {
      current = step.executionId;
      for (let recheck = WAIT_RECHECK_MS.first; step.next === 'wait'; recheck = Math.min(recheck * 2, WAIT_RECHECK_MS.max)) {
        say(`waiting: ${step.reason}`);
        woken = false;
        await condition(() => woken, recheck);
        step = await resumeOccurrence(step.executionId);
      }
      if (step.next === 'run') {
        attempts++;
        say(`attempt ${retry + 1}: execution ${step.executionId}`);
        const run = step;
        outcome = await runAttempt(run, waits);
        await CancellationScope.nonCancellable(async () => wake(await settleAttempt(run.executionId, outcome)));
      } else outcome = { status: step.status, error: step.reason };
      // Only a run that failed or timed out is tried again (an occurrence with no eligible agent is FAILED).
      if ((outcome.status !== 'FAILED' && outcome.status !== 'TIMED_OUT') || retry >= step.maxRetries) break;
      say(`${outcome.status}: ${outcome.error ?? ''}\n\nretry ${retry + 1} of ${step.maxRetries} in ${retryDelayMs(retry + 1)} ms`);
      await sleep(retryDelayMs(retry + 1));
      step = await retryOccurrence({ ...request, executionId: uuid4(), trigger: 'retry', retryOf: current, scheduledFor: undefined });
    }
  } catch (error) {
    if (!isCancellation(error)) throw error;
    outcome = { status: 'CANCELLED', error: 'cancelled by request' };
  }
  // Whatever happened, the occurrence's last run is final and the next one waiting is woken.
  await CancellationScope.nonCancellable(async () => wake(await endOccurrence(input.taskId, current, outcome)));
  say(`${outcome.status}${outcome.error ? `: ${outcome.error}` : ''} (${attempts} attempt${attempts === 1 ? '' : 's'})`);
  const result: TaskRunResult = {
    executionId: current,
    status: outcome.status,
    attempts,
    ...(outcome.error ? { error: outcome.error } : {}),
  };
  if (!tellsStatus) return result;
  runStatusAttribute(true)(outcome.status);
  // As its last run ended: a FAILED or TIMED_OUT occurrence fails, a cancelled one is cancelled.
  return endWorkflowAs(outcome.status, outcome.error, result);
}
