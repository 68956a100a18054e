import { z } from '../../zod';
import { AgentName, Capability } from '../agents/agents.schemas';
import { Prompt } from '../executions/executions.schemas';

export const MasterExecuteBody = z.strictObject({ serverId: z.uuid().optional(), prompt: Prompt }).openapi('MasterExecuteRequest');
export const CreateAgentViaMasterBody = z.strictObject({ serverId: z.uuid(), prompt: Prompt }).openapi('MasterCreateAgentRequest');

/** What the master agent must answer (its `structuredContent.data`), checked before anything is created. */
export const AgentSpec = z.strictObject({
  name: AgentName,
  displayName: z.string().trim().min(1).max(200).optional(),
  description: z.string().max(4000).optional(),
  role: z.enum(['SUPERVISOR', 'WORKER']),
  capabilities: z.array(Capability).max(50).default([]),
  maxConcurrency: z.number().int().min(1).max(50).default(1),
});

/** The same contract as a JSON schema, sent to the host as `responseSchema`. */
export const AGENT_SPEC_JSON_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'role'],
  properties: {
    name: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_-]*$', maxLength: 100 },
    displayName: { type: 'string', maxLength: 200 },
    description: { type: 'string', maxLength: 4000 },
    role: { type: 'string', enum: ['SUPERVISOR', 'WORKER'] },
    capabilities: { type: 'array', items: { type: 'string', pattern: '^[a-z0-9][a-z0-9:._-]*$' }, maxItems: 50 },
    maxConcurrency: { type: 'integer', minimum: 1, maximum: 50 },
  },
} as const;
