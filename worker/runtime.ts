import { ApplicationFailure } from '@temporalio/common';
import { DefaultLogger, Runtime, type LogEntry, type LogLevel } from '@temporalio/worker';
import type { Logger } from '../lib/logger';

const TEMPORAL_LEVELS: Record<string, LogLevel> = {
  trace: 'TRACE',
  debug: 'DEBUG',
  info: 'INFO',
  warn: 'WARN',
  error: 'ERROR',
  fatal: 'ERROR',
  silent: 'ERROR',
};

/** Workflows whose failure is a run's outcome (workflows/agent-execution.workflow.ts `endWorkflowAs`), recorded on its row. */
const RUN_WORKFLOWS = new Set(['agentExecution', 'taskRun']);

/**
 * A run that ended FAILED or TIMED_OUT fails its workflow on purpose, so that Temporal's status
 * says so: that is an answer, logged as one line with its reason, not a worker's warning (whose
 * error would print as `{}`: it crosses the workflow sandbox as a plain Error).
 */
export function runEnded(entry: { message: string; meta?: Record<string, unknown> }, logger: Logger): boolean {
  const meta = entry.meta ?? {};
  if (entry.message !== 'Workflow failed' || !RUN_WORKFLOWS.has(String(meta.workflowType))) return false;
  // Not instanceof: the error was made in the workflow sandbox's realm.
  const message = (meta.error as { message?: unknown } | undefined)?.message;
  const reason = typeof message === 'string' ? message : undefined;
  logger.info({ workflowId: meta.workflowId, workflowType: meta.workflowType, reason, temporal: true }, 'run ended, its workflow failed');
  return true;
}

/**
 * The failure of an activity that gave an answer rather than broke: a non-retryable
 * ApplicationFailure, which the activities throw on purpose (a refused tool or command, a run
 * the agent reported FAILED, a server that no longer exists). Anything else failed for real.
 */
function answeredFailure(entry: LogEntry): ApplicationFailure | undefined {
  if (entry.message !== 'Activity failed') return undefined;
  const error = entry.meta?.error;
  return error instanceof ApplicationFailure && error.nonRetryable ? error : undefined;
}

/**
 * The Temporal SDK's log entries as pino lines. The SDK logs every failed activity as a WARN
 * "Activity failed" with the error's stack; for an answer that is noise a person reads as a
 * crash, so it becomes one INFO line naming the activity, the failure's type and its message.
 * Real failures keep their WARN and stack.
 */
export function temporalLogSink(logger: Logger): (entry: LogEntry) => void {
  return (entry) => {
    if (logger.level === 'silent') return;
    if (runEnded(entry, logger)) return;
    const answered = answeredFailure(entry);
    if (answered) {
      const meta = entry.meta ?? {};
      logger.info(
        {
          temporal: true,
          workflowId: meta.workflowId,
          activityType: meta.activityType,
          attempt: meta.attempt,
          failureType: answered.type,
          durationMs: meta.durationMs,
        },
        `activity ${String(meta.activityType)} ended with ${answered.type ?? 'ApplicationFailure'}: ${answered.message}`,
      );
      return;
    }
    // The workflow bundler reports its whole webpack summary at INFO; that is debug material.
    const noisy = entry.message.startsWith('asset workflow-bundle');
    const level = noisy || entry.level === 'TRACE' ? 'debug' : (entry.level.toLowerCase() as 'debug' | 'info' | 'warn' | 'error');
    logger[level]({ ...entry.meta, temporal: true }, entry.message);
  };
}

/**
 * Routes the Temporal SDK's own logs into pino and, when the worker serves metrics, has the SDK
 * export its own Prometheus metrics. Must run before the first NativeConnection;
 * the runtime is process-wide, so a second call is a no-op. Its default shutdown signals
 * (SIGINT/SIGTERM) make running workers shut down gracefully.
 */
export function installTemporalRuntime(logger: Logger, metrics?: { host: string; temporalPort: number }): void {
  // The SDK's own worker metrics (task slots, poll latency, sticky cache) come from its Rust core,
  // which serves them itself: on WORKER_TEMPORAL_METRICS_PORT, under the worker's metrics host.
  const prometheus = metrics && metrics.temporalPort !== 0 ? { bindAddress: `${metrics.host}:${metrics.temporalPort}` } : undefined;
  try {
    Runtime.install({
      logger: new DefaultLogger(TEMPORAL_LEVELS[logger.level] ?? 'INFO', temporalLogSink(logger)),
      ...(prometheus ? { telemetryOptions: { metrics: { prometheus, metricPrefix: 'temporal_' } } } : {}),
    });
  } catch (error) {
    if (!(error instanceof Error && /already/i.test(error.message))) throw error;
  }
}
