import { keywords, propertyNames, z } from '../../zod';
import { NON_BLANK_TEXT_PATTERN, STORABLE_TEXT_PATTERN } from '../../validate';
import { pageQuery, pageSchema } from '../../pagination';
import { Timestamp } from '../../timestamps';

const ExecutionStatusSchema = z.enum(['QUEUED', 'RUNNING', 'WAITING_INPUT', 'COMPLETED', 'FAILED', 'CANCELLED', 'TIMED_OUT', 'SKIPPED']);

/** The prompt is taken verbatim: no trimming, newlines and spacing kept. */
export const Prompt = z
  .string()
  .min(1, 'required')
  .max(100_000, 'at most 100000 characters')
  .refine((p) => p.trim().length > 0, 'must not be blank')
  .openapi({ pattern: NON_BLANK_TEXT_PATTERN, description: 'Taken verbatim (spacing and newlines kept); not blank' });

export const ExecuteBody = z
  .strictObject({
    prompt: Prompt,
    context: z
      .record(z.string(), z.unknown())
      .optional()
      .openapi({ description: 'Passed to the host with the prompt; at most 100 kB as JSON' }),
    inputTimeoutMs: z
      .number()
      .int()
      .min(1000)
      .max(14 * 24 * 3600_000, 'at most 14 days')
      .optional()
      .openapi({
        description:
          "How long a question the run asks waits for an answer before the run ends TIMED_OUT, 1 s to 14 days (default: the server's INPUT_TIMEOUT_MS, 24 h)",
      }),
  })
  .refine((b) => !b.context || JSON.stringify(b.context).length <= 100_000, { message: 'context is larger than 100 kB', path: ['context'] })
  .openapi('ExecuteRequest');

export const StartedOut = z.object({ executionId: z.uuid(), workflowId: z.string() }).openapi('ExecutionStarted');

export const ListExecutionsQuery = z
  .strictObject({
    ...pageQuery,
    agentId: z.uuid().optional(),
    taskId: z.uuid().optional(),
    status: ExecutionStatusSchema.optional(),
    from: Timestamp.optional().openapi({ description: 'On createdAt, inclusive; before `to` when both are given' }),
    to: Timestamp.optional().openapi({ description: 'On createdAt, exclusive' }),
  })
  .refine((q) => !q.from || !q.to || new Date(q.from) < new Date(q.to), { message: 'from must be before to', path: ['from'] });

export const EventsQuery = z.strictObject({
  after: z.coerce.number().int().min(0).default(0).openapi({ description: 'Return events with seq greater than this' }),
  limit: z.coerce.number().int().min(1).max(1000).default(500),
});

export const ExecutionOut = z
  .object({
    id: z.uuid(),
    agentId: z.uuid().nullable(),
    taskId: z.uuid().nullable(),
    trigger: z.string(),
    triggeredById: z.uuid().nullable(),
    status: ExecutionStatusSchema,
    prompt: z.string().nullable(),
    error: z.string().nullable(),
    tokensUsed: z.number().nullable(),
    attempt: z.number().int(),
    workflowId: z.string().nullable(),
    traceId: z.string().nullable().openapi({
      description:
        'The OpenTelemetry trace id of the run (32 hex digits), when tracing was on as it started; null otherwise (docs/tracing.md)',
    }),
    createdAt: z.string(),
    startedAt: z.string().nullable(),
    completedAt: z.string().nullable(),
    durationMs: z.number().nullable(),
    assignmentReason: z.string().nullable().openapi({ description: "A task's run: which agent was chosen and why" }),
    retryOfId: z.uuid().nullable().openapi({ description: 'The attempt this run retries' }),
    parentExecutionId: z.uuid().nullable().openapi({
      description: "A delegated run (trigger `delegation`): the run whose agent delegated it; its parent's `children` list it",
    }),
    scheduledFor: z.string().nullable().openapi({ description: "A task's occurrence: when the schedule meant it to start" }),
    toolName: z.string().nullable().openapi({ description: "A `kind: tool` task's run: the tool called" }),
    inputTimeoutMs: z.number().int().nullable().openapi({ description: "The run's own input timeout; null: the server's default" }),
  })
  .openapi('Execution');

/** What a person answers: the MCP elicitation result's fields. */
export const InputBody = z
  .strictObject({
    action: z
      .enum(['accept', 'decline', 'cancel'])
      .openapi({ description: 'accept: answer with `content`; decline: refuse to answer; cancel: dismiss the question' }),
    content: z
      .record(z.string().max(200), z.union([z.string().max(10_000), z.number(), z.boolean(), z.array(z.string().max(10_000)).max(100)]))
      .optional()
      .openapi({
        description:
          "For accept (and only then): the form's fields, checked against the question's requestedSchema (400 naming each field that does not fit); at most 100 kB as JSON",
        ...propertyNames({ type: 'string', maxLength: 200, pattern: STORABLE_TEXT_PATTERN }),
      }),
  })
  .refine((b) => !b.content || JSON.stringify(b.content).length <= 100_000, { message: 'content is larger than 100 kB', path: ['content'] })
  // A decline or a cancel carries no content (domain/runs/inputs.ts).
  .openapi(
    'InputAnswerRequest',
    keywords({
      if: { required: ['action'], properties: { action: { enum: ['decline', 'cancel'] } } },
      then: { not: { required: ['content'] } },
    }),
  );

export const InputAnsweredOut = z.object({ inputId: z.uuid(), status: z.literal('ANSWERED') }).openapi('InputAnswered');

const PendingInputOut = z
  .object({
    inputId: z.uuid(),
    message: z.string(),
    requestedSchema: z.record(z.string(), z.unknown()),
    expiresAt: z.string(),
    createdAt: z.string(),
  })
  .openapi('PendingInput', { description: 'The question the run waits on (WAITING_INPUT): answer it with POST /api/executions/:id/input' });

export const ExecutionDetailOut = ExecutionOut.extend({
  output: z.string().nullable(),
  todos: z.array(z.object({ id: z.string(), content: z.string(), status: z.string() })),
  result: z.record(z.string(), z.unknown()).nullable(),
  context: z.record(z.string(), z.unknown()).nullable(),
  progress: z.object({ status: z.string(), todos: z.array(z.unknown()), outputTail: z.string(), seq: z.number().int() }),
  // A union, not `.nullable()`: zod-to-openapi would write the null into the PendingInput component itself.
  pendingInput: z.union([PendingInputOut, z.null()]),
  children: z
    .array(z.object({ id: z.uuid(), agentId: z.uuid().nullable(), agentName: z.string().nullable(), status: z.string() }))
    .openapi({ description: "The runs this run's agent delegated (`delegate`), oldest first; empty for a run that delegated nothing" }),
}).openapi('ExecutionDetail');

export const ExecutionPage = pageSchema(ExecutionOut).openapi('ExecutionPage');
export const EventsOut = z
  .object({ items: z.array(z.record(z.string(), z.unknown())), nextAfter: z.number().int() })
  .openapi('ExecutionEvents');
