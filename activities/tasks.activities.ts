import type { RunDeps } from '../domain/runs/run-deps';
import { beginOccurrence, endOccurrence, resumeOccurrence, retryOccurrence, settleAttempt, timeOutRun } from '../domain/tasks/occurrences';
import type { AttemptOutcome, OccurrenceRequest } from '../workflows/contracts/task-run';
import type { ActivityDeps } from './deps';

/**
 * The activities of a task's occurrence (workflows/task-run.workflow.ts): its decisions, taken
 * in domain/tasks/occurrences.ts (under the task's lock where they count its runs). The call
 * of a `kind: tool` task's tool, run by the occurrence's child `agentExecution`, is
 * `executeToolCall`, beside executePrompt (tool-call.activities.ts).
 */
export function createTaskActivities(deps: ActivityDeps) {
  const { orm, config } = deps;
  const runDeps: RunDeps = { orm, logger: deps.logger, temporal: { client: deps.temporalClient, taskQueue: config.temporal.taskQueue } };

  return {
    beginOccurrence: (request: OccurrenceRequest) => beginOccurrence(runDeps, request),
    resumeOccurrence: (executionId: string) => resumeOccurrence(runDeps, executionId),
    retryOccurrence: (request: OccurrenceRequest) => retryOccurrence(runDeps, request),
    settleAttempt: (executionId: string, outcome: AttemptOutcome) => settleAttempt(runDeps, executionId, outcome),
    timeOutRun: (executionId: string, timeoutMs: number) => timeOutRun(runDeps, executionId, timeoutMs),
    endOccurrence: (taskId: string, executionId: string, outcome: AttemptOutcome) => endOccurrence(runDeps, taskId, executionId, outcome),
  };
}
