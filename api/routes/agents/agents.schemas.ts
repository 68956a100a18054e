import { keywords, z } from '../../zod';
import { NON_BLANK_TEXT_PATTERN } from '../../validate';
import { pageQuery, pageSchema } from '../../pagination';

export const AgentName = z
  .string()
  .trim()
  .min(1, 'required')
  .max(100, 'at most 100 characters')
  // No regex flags: zod-to-openapi would publish the pattern as `...$/i`.
  .regex(/^[A-Za-z0-9][A-Za-z0-9_-]*$/, 'letters, digits, dashes and underscores, starting with a letter or digit');
const DisplayName = z.string().trim().min(1).max(200).openapi({ pattern: NON_BLANK_TEXT_PATTERN });
const Description = z.string().max(4000);
export const AgentRoleSchema = z.enum(['MASTER', 'SUPERVISOR', 'WORKER']);
export const Capability = z
  .string()
  .trim()
  .min(1)
  .max(64)
  .regex(/^[a-z0-9][a-z0-9:._-]*$/, 'lower-case letters, digits and : . _ -');
const Capabilities = z
  .array(Capability)
  .max(50)
  .transform((caps) => [...new Set(caps)]);
const MaxConcurrency = z.number().int().min(1).max(50);
const AgentStatusSchema = z.enum(['PENDING_VALIDATION', 'ACTIVE', 'INACTIVE', 'BUSY', 'WAITING_INPUT', 'ERROR']);

export const CreateAgentBody = z
  .strictObject({
    serverId: z.uuid(),
    name: AgentName,
    displayName: DisplayName.optional(),
    description: Description.optional(),
    role: AgentRoleSchema.default('WORKER'),
    supervisorId: z.uuid().optional().openapi({ description: 'An agent of the same server, in your organisation; a MASTER has none' }),
    capabilities: Capabilities.default([]),
    maxConcurrency: MaxConcurrency.default(1),
  })
  // A MASTER has no supervisor (domain/agents/agent-rules.ts).
  .openapi(
    'CreateAgentRequest',
    keywords({ if: { required: ['role'], properties: { role: { const: 'MASTER' } } }, then: { not: { required: ['supervisorId'] } } }),
  );

/** No status and no server here: status changes only through validate/execute, and an agent never moves. */
export const UpdateAgentBody = z
  .strictObject({
    displayName: DisplayName.optional(),
    description: Description.nullable().optional(),
    role: AgentRoleSchema.optional(),
    supervisorId: z.uuid().nullable().optional(),
    capabilities: Capabilities.optional(),
    maxConcurrency: MaxConcurrency.optional(),
  })
  .refine((b) => Object.values(b).some((v) => v !== undefined), { message: 'give at least one field' })
  .openapi('UpdateAgentRequest', { minProperties: 1 });

export const ListAgentsQuery = z.strictObject({
  ...pageQuery,
  serverId: z.uuid().optional(),
  status: AgentStatusSchema.optional(),
  role: AgentRoleSchema.optional(),
  capability: Capability.optional(),
  supervisorId: z.uuid().optional(),
  q: z
    .string()
    .trim()
    .min(1)
    .max(100)
    .optional()
    .openapi({ description: 'Case-insensitive match on name or display name', pattern: NON_BLANK_TEXT_PATTERN }),
});

const AgentSummaryOut = z.object({
  id: z.uuid(),
  name: z.string(),
  displayName: z.string(),
  role: AgentRoleSchema,
  status: AgentStatusSchema,
});

export const AgentOut = z
  .object({
    id: z.uuid(),
    serverId: z.uuid(),
    name: z.string(),
    displayName: z.string(),
    description: z.string().nullable(),
    role: AgentRoleSchema,
    status: AgentStatusSchema,
    supervisorId: z.uuid().nullable(),
    capabilities: z.array(z.string()),
    maxConcurrency: z.number().int(),
    lastError: z.string().nullable(),
    validatedAt: z.string().nullable(),
    validatedById: z.uuid().nullable(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi('Agent');

export const AgentDetailOut = AgentOut.extend({ supervisor: AgentSummaryOut.nullable(), subordinates: z.array(AgentSummaryOut) }).openapi(
  'AgentDetail',
);

export type HierarchyNode = z.infer<typeof AgentSummaryOut> & { children: HierarchyNode[] };
export const HierarchyOut: z.ZodType<HierarchyNode> = AgentSummaryOut.extend({ children: z.array(z.lazy(() => HierarchyOut)) }).openapi(
  'AgentHierarchy',
);

export const AgentPage = pageSchema(AgentOut).openapi('AgentPage');

export const AgentStatusOut = z
  .object({
    agentId: z.uuid(),
    status: AgentStatusSchema,
    lastError: z.string().nullable(),
    serverStatus: z.string(),
    running: z.number().int(),
    queued: z.number().int(),
    current: z.array(
      z.object({ executionId: z.uuid(), status: z.string(), todos: z.array(z.unknown()), outputTail: z.string(), seq: z.number().int() }),
    ),
  })
  .openapi('AgentStatus');
