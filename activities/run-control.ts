import { ApplicationFailure, CancelledFailure, Context } from '@temporalio/activity';
import { publishCancelStep } from '../lib/cancel-steps';
import type { RunningExecutions } from './running-executions';

/**
 * An activity's hold on its call to a host, given to the code that makes it by
 * `withActivityControl` (a tool change) or `withRunControl` (a run).
 */
export interface ActivityControl {
  /** Aborted by a cancel (Temporal's, or a run's fast path), or by the activity itself (`stop`); the MCP call takes it. */
  readonly signal: AbortSignal;
  /** Stops the call from inside: a question nobody answered, an event that could not be recorded. */
  stop(reason: Error): void;
  /** Whether the signal is aborted (cancelled or stopped). */
  aborted(): boolean;
  /** Beats now (also done every second), with `heartbeatDetails()`. */
  heartbeat(): void;
  /** What each beat carries, which a retry reads back as `heartbeatDetails`; nothing unless the activity sets it. */
  heartbeatDetails: () => unknown;
}

/** A run's hold on its host call: its signal is also aborted by the cancel route's fast path. */
export type RunControl = ActivityControl;

/**
 * Why an attempt's signal aborts when Temporal stops waiting for it without anyone asking for a
 * cancel: its heartbeat timed out (Temporal was down, or the worker stalled), the worker shuts
 * down, the activity was reset or paused. The run goes on in a next attempt, which re-attaches
 * to the host's MCP task: this attempt lets go of the task and must not cancel it.
 */
export class AttemptAbandoned extends Error {
  constructor() {
    super('Temporal no longer waits for this attempt');
    this.name = 'AttemptAbandoned';
  }
}

/** The reason a Temporal cancel aborts the attempt with: a cancel asked for (the workflow's), or an abandoned attempt. */
function temporalCancelReason(ctx: Context): Error {
  const details = ctx.cancellationDetails;
  // Without details (an older server), a cancel, as before.
  return details && !details.cancelRequested ? new AttemptAbandoned() : new Error('cancelled');
}

/** Whether Temporal cancelled the activity (its cancel wins over every other ending). */
export function cancelledByTemporal(): boolean {
  return Context.current().cancellationSignal.aborted;
}

/** What a cancelled run ends with: Temporal's cancel as itself, the cancel route's fast path as a non-retryable ExecutionCancelled. */
export function cancelledFailure(): Error {
  return cancelledByTemporal()
    ? new CancelledFailure('cancelled')
    : ApplicationFailure.nonRetryable('cancelled by request', 'ExecutionCancelled');
}

/**
 * The cancel and heartbeat scaffold of an activity that calls a host. `fn` gets a signal
 * aborted by Temporal's cancel, which a heartbeat delivers, so it beats every second. What `fn`
 * throws passes unchanged: each activity decides what an error after a cancel means. A caller
 * with another way to cancel passes the `controller` that way aborts (withRunControl).
 */
export async function withActivityControl<T>(fn: (control: ActivityControl) => Promise<T>, controller = new AbortController()): Promise<T> {
  const ctx = Context.current();
  // The abort listener runs outside the activity's async context: `ctx` is captured here.
  const onTemporalCancel = () => controller.abort(temporalCancelReason(ctx));
  ctx.cancellationSignal.addEventListener('abort', onTemporalCancel);
  const control: ActivityControl = {
    signal: controller.signal,
    stop: (reason) => controller.abort(reason),
    aborted: () => controller.signal.aborted,
    heartbeat: () => ctx.heartbeat(control.heartbeatDetails()),
    heartbeatDetails: () => undefined,
  };
  const heartbeat = setInterval(control.heartbeat, 1000);
  try {
    return await fn(control);
  } finally {
    clearInterval(heartbeat);
    ctx.cancellationSignal.removeEventListener('abort', onTemporalCancel);
  }
}

/**
 * The cancel and heartbeat scaffold of an activity that runs an execution on its host
 * (executePrompt, executeToolCall): withActivityControl, whose signal the cancel route's fast
 * path (its `fleet_control` notice, through this worker's RunningExecutions) also aborts. An
 * error `fn` throws once the run is cancelled ends it as a cancel, never as a failure; the
 * activity's own verdicts (ApplicationFailure, CancelledFailure) pass unchanged.
 */
export async function withRunControl<T>(
  running: RunningExecutions,
  executionId: string,
  fn: (control: RunControl) => Promise<T>,
): Promise<T> {
  const controller = running.register(executionId);
  // Where the cancel came from and when, for the tasks benchmark's breakdown (lib/mcp-tasks.ts, CANCEL_STEPS_CHANNEL).
  const cancellation = Context.current().cancellationSignal;
  const onFastPath = () => {
    if (!cancellation.aborted) publishCancelStep({ step: 'fast path abort', executionId });
  };
  const onTemporalCancel = () => publishCancelStep({ step: 'temporal cancel delivered', executionId });
  controller.signal.addEventListener('abort', onFastPath, { once: true });
  cancellation.addEventListener('abort', onTemporalCancel, { once: true });
  try {
    return await withActivityControl(async (control) => {
      try {
        return await fn(control);
      } catch (error) {
        if (error instanceof ApplicationFailure || error instanceof CancelledFailure) throw error;
        if (control.aborted() || cancelledByTemporal()) throw cancelledFailure();
        throw error;
      }
    }, controller);
  } finally {
    controller.signal.removeEventListener('abort', onFastPath);
    cancellation.removeEventListener('abort', onTemporalCancel);
    running.unregister(executionId, controller);
  }
}
