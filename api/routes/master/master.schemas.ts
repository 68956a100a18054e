import { z } from '../../zod';
import { AgentName, Capability } from '../agents/agents.schemas';
import { Prompt } from '../executions/executions.schemas';

export const MasterExecuteBody = z
  .strictObject({
    serverId: z.uuid().optional().openapi({ description: "The master's server; required unless your organisation has exactly one server" }),
    prompt: Prompt,
  })
  .openapi('MasterExecuteRequest');
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

export type AgentSpec = z.infer<typeof AgentSpec>;

/**
 * The same contract as a JSON Schema, sent to the host as `responseSchema`. Generated from the
 * zod schema, so the two cannot drift; as the host sees what it may send (`io: 'input'`), fields
 * with a default are optional. Draft 7, which every JSON Schema validator reads.
 */
export const AGENT_SPEC_JSON_SCHEMA = z.toJSONSchema(AgentSpec, { io: 'input', target: 'draft-7' });
