import type { Execution, ExecutionInput } from '../../../entities';

/** The question a run waits on, as a person answering it sees it (never an answer's content). */
export function presentPendingInput(input: ExecutionInput) {
  return {
    inputId: input.id,
    message: input.message,
    requestedSchema: input.requestedSchema,
    expiresAt: input.expiresAt.toISOString(),
    createdAt: input.createdAt.toISOString(),
  };
}

export function presentExecution(execution: Execution, detail = false) {
  return {
    id: execution.id,
    agentId: execution.agent?.id ?? null,
    taskId: execution.task?.id ?? null,
    trigger: execution.trigger,
    triggeredById: execution.triggeredBy?.id ?? null,
    status: execution.status,
    prompt: execution.prompt ?? null,
    error: execution.error ?? null,
    tokensUsed: execution.tokensUsed ?? null,
    attempt: execution.attempt,
    workflowId: execution.workflowId ?? null,
    traceId: execution.traceId ?? null,
    createdAt: execution.createdAt.toISOString(),
    startedAt: execution.startedAt?.toISOString() ?? null,
    completedAt: execution.completedAt?.toISOString() ?? null,
    durationMs: execution.durationMs ?? null,
    assignmentReason: execution.assignmentReason ?? null,
    retryOfId: execution.retryOf?.id ?? null,
    parentExecutionId: execution.parentExecution?.id ?? null,
    scheduledFor: execution.scheduledFor?.toISOString() ?? null,
    toolName: execution.toolName ?? null,
    inputTimeoutMs: execution.inputTimeoutMs ?? null,
    ...(detail
      ? {
          output: execution.output ?? null,
          todos: execution.todos ?? [],
          result: execution.result ?? null,
          context: execution.context ?? null,
        }
      : {}),
  };
}

/** A delegated run as its parent lists it (GET /api/executions/:id's `children`). */
export function presentChild(child: Execution) {
  return { id: child.id, agentId: child.agent?.id ?? null, agentName: child.agent?.name ?? null, status: child.status };
}
