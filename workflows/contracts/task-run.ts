/**
 * The contract of `taskRun` (workflows/task-run.workflow.ts): its input and result, its ids and
 * its schedule's id, the steps its activities decide (domain/tasks/occurrences.ts) and its wake-up
 * signal. Shared by the workflow, its activities, the domain layer and the API; it imports
 * nothing of the project but types.
 */
import { defineSignal } from '@temporalio/workflow';
import type { SearchAttributePair } from '@temporalio/common';
import type { AgentExecutionResult } from './agent-execution';

/** The workflow's type name: the name workflows/index.ts exports it under (checked there). */
export const TASK_RUN_WORKFLOW = 'taskRun';

/** Who started the occurrence: its schedule, a person (run now), or a retry of a failed attempt. */
export type OccurrenceTrigger = 'schedule' | 'manual' | 'retry';

export interface TaskRunInput {
  taskId: string;
  trigger: Exclude<OccurrenceTrigger, 'retry'>;
  /** Run now: the execution id the API already answered with. */
  executionId?: string;
  /** Run now: who asked. */
  requestedBy?: string;
}

export interface OccurrenceRequest {
  taskId: string;
  executionId: string;
  trigger: OccurrenceTrigger;
  taskRunWorkflowId: string;
  scheduledFor?: string;
  requestedBy?: string;
  retryOf?: string;
}

/** What the occurrence does next, as decided under the task's lock. */
export type OccurrenceStep =
  | {
      next: 'run';
      executionId: string;
      slotTaken: boolean;
      tool: boolean;
      timeoutMs: number | null;
      maxRetries: number;
      searchAttributes: SearchAttributePair[];
    }
  | { next: 'wait'; executionId: string; maxRetries: number; reason: string }
  | {
      next: 'end';
      executionId: string;
      maxRetries: number;
      status: 'SKIPPED' | 'FAILED' | 'CANCELLED' | 'COMPLETED' | 'TIMED_OUT';
      reason: string;
    };

export interface AttemptOutcome {
  status: AgentExecutionResult['status'] | 'SKIPPED';
  error?: string;
}

/** What settling an attempt leaves to wake: runs queued for a slot, occurrences waiting their turn. */
export interface Wakeups {
  slotFreed: string[];
  taskRuns: string[];
}

export interface TaskRunResult {
  executionId: string;
  status: AttemptOutcome['status'];
  attempts: number;
  error?: string;
}

/** The workflow's signature, for typed starts and schedules by type name. */
export type TaskRunWorkflow = (input: TaskRunInput) => Promise<TaskRunResult>;

export function taskScheduleId(taskId: string): string {
  return `task-${taskId}`;
}

/** Run now: one id per occurrence, from its first execution. */
export function taskRunWorkflowId(taskId: string, executionId: string): string {
  return `task-run-${taskId}-${executionId}`;
}

/** The schedule's action id; Temporal appends the scheduled time for each occurrence. */
export function scheduledTaskRunWorkflowId(taskId: string): string {
  return `task-run-${taskId}`;
}

/** Sent by an occurrence that ended (or was cancelled) to the next one waiting behind it. */
export const occurrenceWakeSignal = defineSignal('occurrenceWake');
