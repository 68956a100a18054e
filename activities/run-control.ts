import { ApplicationFailure, CancelledFailure, Context } from '@temporalio/activity';
import type { RunningExecutions } from './running-executions';

/** A run's hold on its host call, given to the code that makes it by `withRunControl`. */
export interface RunControl {
  /** Aborted by either cancel path, or by the run itself (`stop`); the MCP call takes it. */
  readonly signal: AbortSignal;
  /** Stops the run from inside: a question nobody answered, an event that could not be recorded. */
  stop(reason: Error): void;
  /** Whether the signal is aborted (cancelled or stopped). */
  aborted(): boolean;
  /** Beats now (also done every second), with `heartbeatDetails()`. */
  heartbeat(): void;
  /** What each beat carries, which a retry reads back as `heartbeatDetails`; nothing unless the run sets it. */
  heartbeatDetails: () => unknown;
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
 * The cancel and heartbeat scaffold of an activity that runs an execution on its host
 * (executePrompt, executeToolCall). `fn` gets a signal aborted by either cancel path: the fast
 * one (the cancel route's `fleet_control` notice, through this worker's RunningExecutions) and
 * Temporal's, which a heartbeat delivers, so it beats every second. An error `fn` throws once the
 * run is cancelled ends it as a cancel, never as a failure; the activity's own verdicts
 * (ApplicationFailure, CancelledFailure) pass unchanged.
 */
export async function withRunControl<T>(
  running: RunningExecutions,
  executionId: string,
  fn: (control: RunControl) => Promise<T>,
): Promise<T> {
  const ctx = Context.current();
  const controller = running.register(executionId);
  const onTemporalCancel = () => controller.abort(new Error('cancelled'));
  ctx.cancellationSignal.addEventListener('abort', onTemporalCancel);
  const control: RunControl = {
    signal: controller.signal,
    stop: (reason) => controller.abort(reason),
    aborted: () => controller.signal.aborted,
    heartbeat: () => ctx.heartbeat(control.heartbeatDetails()),
    heartbeatDetails: () => undefined,
  };
  const heartbeat = setInterval(control.heartbeat, 1000);
  try {
    return await fn(control);
  } catch (error) {
    if (error instanceof ApplicationFailure || error instanceof CancelledFailure) throw error;
    if (controller.signal.aborted || ctx.cancellationSignal.aborted) throw cancelledFailure();
    throw error;
  } finally {
    clearInterval(heartbeat);
    ctx.cancellationSignal.removeEventListener('abort', onTemporalCancel);
    running.unregister(executionId, controller);
  }
}
