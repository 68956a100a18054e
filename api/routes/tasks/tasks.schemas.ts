import { propertyNames, z } from '../../zod';
import { pageQuery, pageSchema } from '../../pagination';
import { HOST_TOOLS } from '../../../lib/host-contract';
import { Timestamp } from '../../timestamps';
import { Capability } from '../agents/agents.schemas';
import { ExecutionOut } from '../executions/executions.schemas';
import { NON_BLANK_TEXT_PATTERN } from '../../validate';
import { ZONE_NAME } from '../../../domain/tasks/schedule-spec';

const TaskKindSchema = z.enum(['prompt', 'tool']);
const PrioritySchema = z.enum(['LOW', 'NORMAL', 'HIGH', 'URGENT']);
const AssignmentModeSchema = z.enum(['MANUAL', 'AUTO', 'BY_CAPABILITY']).openapi({
  description:
    'MANUAL: agentId; AUTO: the least-loaded ACTIVE agent on an ONLINE server; BY_CAPABILITY: the same among agents holding every requiredCapabilities',
});
const ExecutionModeSchema = z
  .enum(['IMMEDIATE', 'SCHEDULED', 'RECURRING'])
  .openapi({ description: 'IMMEDIATE: only run now; SCHEDULED: once at scheduledAt; RECURRING: cronExpression in timezone' });
const OverlapPolicySchema = z
  .enum(['SKIP', 'BUFFER_ONE', 'BUFFER_ALL', 'CANCEL_OTHER', 'TERMINATE_OTHER', 'ALLOW_ALL'])
  .openapi({ description: 'What an occurrence does while earlier runs of the task are still going (docs/tasks.md)' });
const RunStatusSchema = z.enum(['QUEUED', 'RUNNING', 'WAITING_INPUT', 'COMPLETED', 'FAILED', 'CANCELLED', 'TIMED_OUT', 'SKIPPED']);
const TriggerSchema = z.enum(['manual', 'api', 'schedule', 'master', 'retry']);

const Title = z.string().trim().min(1, 'required').max(200, 'at most 200 characters').openapi({ pattern: NON_BLANK_TEXT_PATTERN });
const Description = z.string().max(4000, 'at most 4000 characters');
/** Taken verbatim, like an execute prompt; `{{name}}` placeholders are filled from promptVariables. */
const PromptText = z.string().max(100_000, 'at most 100000 characters').openapi({ example: 'Summarise the open issues of {{repo}}' });
const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,99}$/;
const VariableName = z.string().regex(VARIABLE_NAME, 'a placeholder name: letters, digits, _ . -, starting with a letter or _');
const PromptVariables = z
  .record(VariableName, z.string().max(10_000, 'at most 10000 characters'))
  .refine((v) => Object.keys(v).length <= 100, 'at most 100 variables')
  .openapi({ example: { repo: 'mcp-fleet' }, maxProperties: 100, ...propertyNames({ type: 'string', pattern: VARIABLE_NAME.source }) });
const ToolName = z
  .string()
  .trim()
  .min(1, 'required')
  .max(200, 'at most 200 characters')
  .openapi({
    pattern: NON_BLANK_TEXT_PATTERN,
    description: `A tool the agent's server offers, granted to the agent; never a tool of the host contract (${HOST_TOOLS.join(', ')}, in any letter case): 400 platform_tool`,
  });
const ToolArguments = z
  .record(z.string(), z.unknown())
  .refine((a) => JSON.stringify(a).length <= 100_000, 'toolArguments is larger than 100 kB')
  .openapi({ description: 'At most 100 kB as JSON; checked against the tool’s input schema when the server’s pinned tool list has it' });
const Capabilities = z
  .array(Capability)
  .max(50)
  .transform((caps) => [...new Set(caps)]);
const CronExpression = z.string().trim().min(1, 'required').max(120, 'at most 120 characters').openapi({
  example: '0 9 * * 1-5',
  // The pattern is the shape; the rest of the dialect (docs/tasks.md) is checked by the route.
  pattern: '^\\s*(?:@[A-Za-z]+|[0-9A-Za-z*,/-]+(?:\\s+[0-9A-Za-z*,/-]+){4,5})\\s*$',
  description:
    '5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first; numbers, *, lists, ranges, steps, month and weekday names, or @hourly, @daily, @midnight, @weekly, @monthly, @yearly, @annually. Not L, W, # or ?, nor a day of month and a day of week together; it must fire, and no two occurrences may be closer than the minimum interval (TASK_MIN_INTERVAL_SECONDS, 60 s by default, in the zone: daylight saving included)',
});
const Timezone = z.string().trim().min(1, 'required').max(64, 'at most 64 characters').openapi({
  example: 'Europe/Paris',
  pattern: ZONE_NAME.source,
  description: 'An IANA time zone name the server knows (not an offset such as +02:00)',
});
const TimeoutMs = z
  .number()
  .int()
  .min(1000, 'at least 1000 ms')
  .max(24 * 3600_000, 'at most 24 hours');
const MaxRetries = z.number().int().min(0).max(10, 'at most 10');

const fields = {
  title: Title,
  description: Description.nullable(),
  kind: TaskKindSchema,
  prompt: PromptText.nullable(),
  promptVariables: PromptVariables,
  toolName: ToolName.nullable(),
  toolArguments: ToolArguments.nullable(),
  priority: PrioritySchema,
  assignmentMode: AssignmentModeSchema,
  agentId: z.uuid().nullable(),
  requiredCapabilities: Capabilities,
  executionMode: ExecutionModeSchema,
  scheduledAt: Timestamp.nullable(),
  cronExpression: CronExpression.nullable(),
  timezone: Timezone,
  overlapPolicy: OverlapPolicySchema,
  timeoutMs: TimeoutMs.nullable(),
  maxRetries: MaxRetries,
  enabled: z.boolean(),
};

export const CreateTaskBody = z
  .strictObject({
    ...fields,
    description: fields.description.optional(),
    kind: fields.kind.default('prompt'),
    prompt: fields.prompt.optional(),
    promptVariables: fields.promptVariables.default({}),
    toolName: fields.toolName.optional(),
    toolArguments: fields.toolArguments.optional(),
    priority: fields.priority.default('NORMAL'),
    assignmentMode: fields.assignmentMode.default('MANUAL'),
    agentId: fields.agentId.optional(),
    requiredCapabilities: fields.requiredCapabilities.default([]),
    executionMode: fields.executionMode.default('IMMEDIATE'),
    scheduledAt: fields.scheduledAt.optional(),
    cronExpression: fields.cronExpression.optional(),
    timezone: fields.timezone.default('UTC'),
    overlapPolicy: fields.overlapPolicy.default('SKIP'),
    timeoutMs: fields.timeoutMs.optional(),
    maxRetries: fields.maxRetries.default(0),
    enabled: fields.enabled.default(true),
  })
  .openapi('CreateTaskRequest', {
    example: {
      title: 'Weekday triage',
      prompt: 'Triage the new issues of {{repo}}',
      promptVariables: { repo: 'mcp-fleet' },
      assignmentMode: 'AUTO',
      executionMode: 'RECURRING',
      cronExpression: '0 9 * * 1-5',
      timezone: 'Europe/Paris',
      overlapPolicy: 'SKIP',
      timeoutMs: 600000,
      maxRetries: 2,
    },
  });

export const UpdateTaskBody = z
  .strictObject(
    Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, v.optional()])) as {
      [K in keyof typeof fields]: z.ZodOptional<(typeof fields)[K]>;
    },
  )
  .refine((b) => Object.values(b).some((v) => v !== undefined), { message: 'give at least one field' })
  .openapi('UpdateTaskRequest', { example: { cronExpression: '*/30 9-17 * * 1-5', enabled: true }, minProperties: 1 });

export const ListTasksQuery = z.strictObject({
  ...pageQuery,
  kind: TaskKindSchema.optional(),
  executionMode: ExecutionModeSchema.optional(),
  assignmentMode: AssignmentModeSchema.optional(),
  enabled: z.enum(['true', 'false']).optional(),
  agentId: z.uuid().optional(),
  text: z
    .string()
    .trim()
    .min(1)
    .max(100)
    .optional()
    .openapi({ description: 'Case-insensitive match on title or description', pattern: NON_BLANK_TEXT_PATTERN }),
});

export const TaskExecutionsQuery = z
  .strictObject({
    ...pageQuery,
    status: RunStatusSchema.optional(),
    trigger: TriggerSchema.optional(),
    from: Timestamp.optional().openapi({ description: 'On createdAt, inclusive; before `to` when both are given' }),
    to: Timestamp.optional().openapi({ description: 'On createdAt, exclusive' }),
  })
  .refine((q) => !q.from || !q.to || new Date(q.from) < new Date(q.to), { message: 'from must be before to', path: ['from'] });

export const DeleteTaskQuery = z.strictObject({
  force: z.enum(['true', 'false']).optional().openapi({ description: 'Delete even with runs not ended: they are cancelled' }),
});

export const CancelTaskBody = z
  .strictObject({ executionId: z.uuid().optional().openapi({ description: 'Only this run of the task; default every run not ended' }) })
  .openapi('CancelTaskRequest');

export const PreviewScheduleBody = z
  .strictObject({ cronExpression: CronExpression, timezone: Timezone.default('UTC'), count: z.number().int().min(1).max(50).default(5) })
  .openapi('PreviewScheduleRequest', { example: { cronExpression: '0 9 * * 1-5', timezone: 'Europe/Paris' } });

export const PreviewScheduleOut = z
  .object({ cronExpression: z.string(), timezone: z.string(), nextRunTimes: z.array(z.string()) })
  .openapi('SchedulePreview');

export const TaskOut = z
  .object({
    id: z.uuid(),
    title: z.string(),
    description: z.string().nullable(),
    kind: TaskKindSchema,
    prompt: z.string().nullable(),
    promptVariables: z.record(z.string(), z.string()),
    toolName: z.string().nullable(),
    toolArguments: z.record(z.string(), z.unknown()).nullable(),
    priority: PrioritySchema,
    assignmentMode: AssignmentModeSchema,
    agentId: z.uuid().nullable(),
    requiredCapabilities: z.array(z.string()),
    executionMode: ExecutionModeSchema,
    scheduledAt: z.string().nullable(),
    cronExpression: z.string().nullable(),
    timezone: z.string(),
    overlapPolicy: OverlapPolicySchema,
    timeoutMs: z.number().nullable(),
    maxRetries: z.number().int(),
    enabled: z.boolean(),
    scheduleId: z.string().nullable().openapi({ description: 'The Temporal Schedule (SCHEDULED and RECURRING tasks)' }),
    nextRunTimes: z
      .array(z.string())
      .openapi({ description: 'The next occurrences (up to 5); in GET /api/tasks/:id from the Temporal Schedule itself' }),
    lastRunAt: z.string().nullable(),
    nextRunAt: z.string().nullable(),
    pausedAt: z.string().nullable().openapi({
      description:
        'Since when the task is disabled; on resume, the occurrences missed meanwhile are recorded SKIPPED ("skipped: the task was paused")',
    }),
    runCount: z.number().int(),
    skippedCount: z.number().int(),
    failedCount: z.number().int(),
    liveCount: z.number().int().openapi({ description: 'Runs not ended: running, queued, or waiting their turn' }),
    agentProblem: z
      .string()
      .nullable()
      .openapi({ description: "Why a MANUAL task's agent cannot run it (deleted, INACTIVE, ...), else null" }),
    createdById: z.uuid().nullable(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi('Task');

// A union, not `.nullable()`: zod-to-openapi writes a nullable $ref as `allOf: [$ref, {type: [object, null]}]`, which null fails.
export const TaskDetailOut = TaskOut.extend({
  lastRun: z.union([ExecutionOut, z.null()]).openapi({ description: 'The most recent run, skipped ones included; null before the first' }),
}).openapi('TaskDetail');
export const TaskPage = pageSchema(TaskOut).openapi('TaskPage');
export const TaskRunPage = pageSchema(ExecutionOut).openapi('TaskRunPage');
export const TaskStartedOut = z
  .object({
    executionId: z.uuid().openapi({ description: 'The run, readable at once at /api/executions/<executionId> (the Location)' }),
    workflowId: z.string().openapi({ description: "The occurrence's taskRun workflow; the run's own is execution-<executionId>" }),
    status: RunStatusSchema.openapi({
      description:
        "As decided under the overlap policy: RUNNING, QUEUED (for a slot, or its turn), SKIPPED or FAILED (the reason is the run's error)",
    }),
  })
  .openapi('TaskRunStarted');
export const TaskCancelledOut = z.object({ cancelled: z.array(z.uuid()) }).openapi('TaskRunsCancelled');
