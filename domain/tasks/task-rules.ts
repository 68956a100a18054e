import { z } from 'zod';
import { AssignmentMode, ExecutionMode, TaskKind, type Agent, type McpServer, type Task } from '../../entities';
import { isHostContractTool } from '../../lib/host-contract';
import { AppError } from '../errors';
import { PLATFORM_TOOL_CODE, platformToolProblem } from '../tools/reserved-names';
import { assertTimezone, cronGapBelow, nextCronTimes, ScheduleSpecError } from './schedule-spec';

/**
 * What makes a task runnable, checked at create and update time so that a mistake is a 400
 * naming the field, not a failed run later: placeholders, the mode's own fields, the cron
 * expression and zone, and for `kind: tool` the tool and its arguments against the server's
 * pinned tool list when the agent (so the server) is known.
 */

export interface FieldProblem {
  path: string;
  message: string;
  code: string;
}

const PLACEHOLDER = /\{\{\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*\}\}/g;

export function placeholders(prompt: string): string[] {
  return [...new Set([...prompt.matchAll(PLACEHOLDER)].map((m) => m[1]!))];
}

/** The prompt with every `{{name}}` replaced by its variable (checked beforehand: none is missing). */
export function renderPrompt(prompt: string, variables: Record<string, string>): string {
  return prompt.replace(PLACEHOLDER, (whole, name: string) => variables[name] ?? whole);
}

/** The task as it would be after a create or an update: the entity's fields. */
export type TaskDraft = Pick<
  Task,
  | 'kind'
  | 'prompt'
  | 'promptVariables'
  | 'toolName'
  | 'toolArguments'
  | 'assignmentMode'
  | 'requiredCapabilities'
  | 'executionMode'
  | 'scheduledAt'
  | 'cronExpression'
  | 'timezone'
> & { agent?: Agent | null };

function promptProblems(draft: TaskDraft): FieldProblem[] {
  if (draft.kind !== TaskKind.PROMPT) return [];
  if (!draft.prompt?.trim()) return [{ path: 'prompt', message: 'required for kind prompt', code: 'required' }];
  const problems: FieldProblem[] = [];
  for (const name of placeholders(draft.prompt)) {
    const value = draft.promptVariables[name];
    if (value === undefined)
      problems.push({ path: 'prompt', message: `placeholder {{${name}}} has no value in promptVariables`, code: 'unknown_placeholder' });
    else if (value.trim() === '')
      problems.push({ path: `promptVariables.${name}`, message: `placeholder {{${name}}} is empty`, code: 'unfilled_placeholder' });
  }
  return problems;
}

function modeProblems(draft: TaskDraft, now: Date, checkPast: boolean, minIntervalSeconds: number | undefined): FieldProblem[] {
  if (draft.executionMode === ExecutionMode.SCHEDULED) {
    if (!draft.scheduledAt) return [{ path: 'scheduledAt', message: 'required for executionMode SCHEDULED', code: 'required' }];
    if (checkPast && draft.scheduledAt.getTime() <= now.getTime())
      return [{ path: 'scheduledAt', message: `${draft.scheduledAt.toISOString()} is in the past`, code: 'in_the_past' }];
    return [];
  }
  if (draft.executionMode === ExecutionMode.RECURRING) {
    if (!draft.cronExpression) return [{ path: 'cronExpression', message: 'required for executionMode RECURRING', code: 'required' }];
    try {
      nextCronTimes(draft.cronExpression, draft.timezone, 1, now);
    } catch (error) {
      if (error instanceof ScheduleSpecError)
        return [{ path: error.field, message: error.message, code: `invalid_${error.field === 'timezone' ? 'timezone' : 'cron'}` }];
      throw error;
    }
    const close = minIntervalSeconds ? cronGapBelow(draft.cronExpression, draft.timezone, minIntervalSeconds, now) : null;
    if (close) return [{ path: 'cronExpression', message: tooFrequent(close, minIntervalSeconds!), code: 'too_frequent' }];
    return [];
  }
  return [];
}

function assignmentProblems(draft: TaskDraft): FieldProblem[] {
  if (draft.assignmentMode === AssignmentMode.MANUAL && !draft.agent)
    return [{ path: 'agentId', message: 'required for assignmentMode MANUAL', code: 'required' }];
  if (draft.assignmentMode === AssignmentMode.BY_CAPABILITY && draft.requiredCapabilities.length === 0) {
    return [{ path: 'requiredCapabilities', message: 'at least one capability for assignmentMode BY_CAPABILITY', code: 'required' }];
  }
  return [];
}

/** The tool on `server`, and its arguments against its input schema, when the server's pinned list says. */
export function toolProblems(
  toolName: string,
  args: Record<string, unknown> | undefined,
  server: Pick<McpServer, 'name' | 'toolsSnapshot'> | undefined,
): FieldProblem[] {
  // The host contract's tools are driven by the platform itself (prompts, agents, installs), never by a task.
  const reserved = platformToolProblem(toolName, "a task's tool");
  if (reserved)
    return [
      {
        path: 'toolName',
        message: toolName === 'execute_prompt' ? `${reserved}; a prompt is a task of kind prompt` : reserved,
        code: PLATFORM_TOOL_CODE,
      },
    ];
  if (!server?.toolsSnapshot) return [];
  const tool = server.toolsSnapshot.find((t) => t.name === toolName);
  if (!tool) {
    const offered = server.toolsSnapshot.map((t) => t.name).filter((name) => !isHostContractTool(name));
    return [
      {
        path: 'toolName',
        message: `the server ${server.name} has no tool ${toolName}${offered.length ? ` (it offers ${offered.join(', ')})` : ''}`,
        code: 'unknown_tool',
      },
    ];
  }
  if (!tool.inputSchema || typeof tool.inputSchema !== 'object') return [];
  let schema: z.ZodType;
  try {
    schema = z.fromJSONSchema(tool.inputSchema as Parameters<typeof z.fromJSONSchema>[0]);
  } catch {
    // A schema zod cannot read is the server's business: the server checks its own arguments.
    return [];
  }
  const parsed = schema.safeParse(args ?? {});
  if (parsed.success) return [];
  return parsed.error.issues.map((issue) => ({
    path: ['toolArguments', ...issue.path.map(String)].join('.'),
    message: issue.message,
    code: issue.code,
  }));
}

function kindProblems(draft: TaskDraft): FieldProblem[] {
  if (draft.kind !== TaskKind.TOOL) return [];
  if (!draft.toolName) return [{ path: 'toolName', message: 'required for kind tool', code: 'required' }];
  return toolProblems(draft.toolName, draft.toolArguments, draft.agent?.server);
}

/** What a too frequent cron is told: how close it fires, where, and the floor with its setting. */
export function tooFrequent(close: { gapSeconds: number; between: string }, minIntervalSeconds: number): string {
  return `fires ${close.gapSeconds} s apart at its closest (${close.between}); a recurring task may fire at most once every ${minIntervalSeconds} s (TASK_MIN_INTERVAL_SECONDS)`;
}

/**
 * Every problem of the draft at once, as one 400 `validation_failed`. `checkPast`: a one-off's
 * time must lie ahead when it is set, not when another field of a task that already ran changes.
 * `minIntervalSeconds`: the floor on how close a RECURRING task's occurrences may be, checked
 * when given (its schedule set, or the task enabled; not when a task saved under a lower floor
 * is only renamed).
 */
export function assertRunnableTask(
  draft: TaskDraft,
  { now = new Date(), checkPast = true, minIntervalSeconds = undefined as number | undefined } = {},
): void {
  const problems = [
    ...promptProblems(draft),
    ...kindProblems(draft),
    ...assignmentProblems(draft),
    ...modeProblems(draft, now, checkPast, minIntervalSeconds),
  ];
  if (draft.executionMode !== ExecutionMode.RECURRING && draft.timezone) {
    try {
      assertTimezone(draft.timezone);
    } catch (error) {
      if (!(error instanceof ScheduleSpecError)) throw error;
      problems.push({ path: 'timezone', message: error.message, code: 'invalid_timezone' });
    }
  }
  if (problems.length)
    throw new AppError(
      400,
      'validation_failed',
      'Request validation failed',
      problems.map((p) => ({ ...p, path: `body.${p.path}` })),
    );
}

/** What is wrong with the task's agent today, for GET /api/tasks/:id and the next occurrence; null when nothing is. */
export function agentProblem(task: Pick<Task, 'assignmentMode' | 'agent'>): string | null {
  if (task.assignmentMode !== AssignmentMode.MANUAL) return null;
  if (!task.agent) return "the task's agent was deleted; assign another agent (agentId) or switch to AUTO";
  const { status, name } = task.agent;
  if (status === 'ACTIVE' || status === 'BUSY' || status === 'WAITING_INPUT') return null;
  return `the task's agent ${name} is ${status}${status === 'PENDING_VALIDATION' ? ' (validate it)' : ''}; it cannot run the task`;
}
