import type { Task } from '../../../entities';
import { agentProblem } from '../../../domain/tasks/task-rules';
import type { TaskRunCounts } from '../../../domain/tasks/task-queries';
import { taskScheduleId } from '../../../workflows/contracts/task-run';

/** A task as the API shows it: the entity's fields, its schedule, its counters and what stops it from running. */
export function presentTask(task: Task, counts: TaskRunCounts, nextRunTimes: Date[]) {
  return {
    id: task.id,
    title: task.title,
    description: task.description ?? null,
    kind: task.kind,
    prompt: task.prompt ?? null,
    promptVariables: task.promptVariables,
    toolName: task.toolName ?? null,
    toolArguments: task.toolArguments ?? null,
    priority: task.priority,
    assignmentMode: task.assignmentMode,
    agentId: task.agent?.id ?? null,
    requiredCapabilities: task.requiredCapabilities,
    executionMode: task.executionMode,
    scheduledAt: task.scheduledAt?.toISOString() ?? null,
    cronExpression: task.cronExpression ?? null,
    timezone: task.timezone,
    overlapPolicy: task.overlapPolicy,
    timeoutMs: task.timeoutMs ?? null,
    maxRetries: task.maxRetries,
    enabled: task.enabled,
    scheduleId: task.executionMode === 'IMMEDIATE' ? null : taskScheduleId(task.id),
    nextRunTimes: nextRunTimes.map((d) => d.toISOString()),
    lastRunAt: task.lastRunAt?.toISOString() ?? null,
    nextRunAt: task.nextRunAt?.toISOString() ?? null,
    pausedAt: task.pausedAt?.toISOString() ?? null,
    runCount: task.runCount,
    skippedCount: counts.skipped,
    failedCount: counts.failed,
    liveCount: counts.live,
    agentProblem: agentProblem(task),
    createdById: task.createdBy?.id ?? null,
    createdAt: task.createdAt.toISOString(),
    updatedAt: task.updatedAt.toISOString(),
  };
}
