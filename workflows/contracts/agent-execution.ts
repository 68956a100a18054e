/**
 * The contract of `agentExecution` (workflows/agent-execution.workflow.ts): how a run is started,
 * queried and signalled, and what it and its activities answer. The workflow, its activities, the
 * domain layer, the API and the tests import it; it imports nothing of the project but types, so
 * none of them loads workflow code through it.
 */
import { ApplicationFailure, defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { SearchAttributePair } from '@temporalio/common';
import type { TodoItem } from '../../lib/host-contract';

/** The workflow's type name: the name workflows/index.ts exports it under (checked there). */
export const AGENT_EXECUTION_WORKFLOW = 'agentExecution';

export interface AgentExecutionOptions {
  timeoutMs?: number;
  /** The API already took a free slot (execution RUNNING) when it created the run. */
  slotTaken?: boolean;
  /** A `kind: tool` task's run: call the run's tool instead of execute_prompt. */
  tool?: boolean;
  /** A delegated run (a child workflow of its parent's run): it signals no task occurrence. */
  parentExecutionId?: string;
  /** A delegated run's hard end (epoch ms): its parent's, so a child never outlives its parent's time limit. */
  deadlineAt?: number;
}

export type FinalStatus = 'COMPLETED' | 'FAILED' | 'CANCELLED' | 'TIMED_OUT';

export interface AgentExecutionResult {
  status: FinalStatus;
  error?: string;
}

/** The workflow's signature, for typed starts and handles by type name. */
export type AgentExecutionWorkflow = (executionId: string, options?: AgentExecutionOptions) => Promise<AgentExecutionResult>;

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

/** The execution whose `agentExecution` workflow id this is; undefined for another workflow's id. */
export function executionIdOfWorkflow(workflowId: string): string | undefined {
  return workflowId.startsWith('execution-') ? workflowId.slice('execution-'.length) : undefined;
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

/**
 * How a run's workflow ends, so that Temporal's own status says what happened: COMPLETED
 * completes (with the result), CANCELLED after a cancel request is cancelled, and anything
 * else fails with the run's error as the message, one of these types, and the result as the
 * failure's details.
 */
export const RUN_FAILURE_TYPES = { FAILED: 'ExecutionFailed', TIMED_OUT: 'ExecutionTimedOut', CANCELLED: 'ExecutionCancelled' } as const;

/**
 * The run's result carried by its workflow's failure (the `cause` of a ChildWorkflowFailure or
 * a client's WorkflowFailedError), or undefined when the failure is not a run's end.
 */
export function runResultOfFailure(failure: unknown): AgentExecutionResult | undefined {
  if (!(failure instanceof ApplicationFailure) || !Object.values<string>(RUN_FAILURE_TYPES).includes(failure.type ?? '')) return undefined;
  const result = failure.details?.[0] as AgentExecutionResult | undefined;
  return result && typeof result.status === 'string'
    ? result
    : { status: failure.type === RUN_FAILURE_TYPES.TIMED_OUT ? 'TIMED_OUT' : 'FAILED', error: failure.message };
}

/** A task-backed run's question left for a person: the activity ends and the workflow waits. */
export interface InputWait {
  inputId: string;
  message: string;
  /** Field names of the form, for the workflow's summary. */
  fields: string[];
  /** Epoch ms; the workflow expires the question then. */
  expiresAt: number;
  /** The input timeout that applied, for the run's error sentence. */
  timeoutMs: number;
}

/** A duration as a person reads it in a sentence: "24 h", "90 min", "2 s" (pure: workflows use it too). */
export function describeDuration(ms: number): string {
  if (ms >= 3600_000 && ms % 3600_000 === 0) return `${ms / 3600_000} h`;
  if (ms >= 60_000 && ms % 60_000 === 0) return `${ms / 60_000} min`;
  if (ms >= 1000) return `${Math.round(ms / 100) / 10} s`;
  return `${ms} ms`;
}

/** The error of a run whose question nobody answered in time. */
export function inputTimeoutMessage(timeoutMs: number): string {
  return `no answer to the input request within ${describeDuration(timeoutMs)}`;
}

/** How many delegations deep a run may be: a run at this depth may not delegate (issue 22's limit). */
export const MAX_DELEGATION_DEPTH = 3;

/** The failure type of a refused delegation: its message is the reason, for the agent to read. */
export const DELEGATION_REFUSED = 'DelegationRefused';

/** What the MCP endpoint's `delegate` asks a running parent for: a child run of a direct subordinate. */
export interface DelegateRequest {
  /** The subordinate's id (the endpoint resolved the name). */
  agentId: string;
  prompt: string;
  context?: Record<string, unknown>;
  /** DELEGATION_MAX_CHILDREN, as the API is configured. */
  maxChildren: number;
}

/**
 * Sent to the parent's run (`execution-<parentId>`) with an Update id derived from the MCP
 * request, so a request sent again is answered by the same child. The parent validates it
 * (running, fan-out, time left), records the child row (idempotent, keyed by the Update id),
 * starts the child workflow, and answers its execution id.
 */
export const delegateUpdate = defineUpdate<{ executionId: string }, [DelegateRequest]>('delegate');

/** What the parent's local activity recorded for a delegation: the child row (new or found again) and how to start it. */
export interface DelegatedRun {
  executionId: string;
  /** The child took its agent's slot at once (RUNNING). */
  slotTaken: boolean;
  searchAttributes: SearchAttributePair[];
}
