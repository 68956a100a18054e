/**
 * The AI agent of `DEV_LOCAL_MODEL=1 npm run dev`: "assistant", a WORKER on the local reference
 * host whose `engine:openai` capability makes the host run it on the openai engine, against the
 * local model server the dev script starts (dev/local-model.ts), while the host's own engine (and
 * the "runbook" MASTER) stays as it was. It is created PENDING_VALIDATION: the dev script then
 * validates it through the agentProvision workflow on every start, because the host learns an
 * agent's engine at provision_agent and keeps it in memory only. No tools are granted: it reads
 * and writes files in its workspace, which is what a newcomer's first prompt needs.
 */
import type { EntityManager } from '@mikro-orm/postgresql';
import { Agent, AgentRole, AgentStatus } from '../agent.entity';
import { McpServer } from '../mcp-server.entity';
import { Organization } from '../organization.entity';
import { User } from '../user.entity';

export const ASSISTANT_AGENT_NAME = 'assistant';

export async function seedAssistantAgent(
  em: EntityManager,
  organizationId: string,
  serverName: string,
  adminEmail: string,
): Promise<{ agentId: string; created: boolean; validatedBy?: string }> {
  const organization = em.getReference(Organization, organizationId);
  const server = await em.findOneOrFail(McpServer, { organization, name: serverName });
  const admin = await em.findOne(User, { email: adminEmail });
  const validatedBy = admin ? { validatedBy: admin.id } : {};
  const existing = await em.findOne(Agent, { server, name: ASSISTANT_AGENT_NAME });
  // A developer's own changes to it (or their own agent of that name) are theirs: left as they are.
  if (existing) return { agentId: existing.id, created: false, ...validatedBy };
  const agent = em.create(Agent, {
    organization,
    server,
    name: ASSISTANT_AGENT_NAME,
    displayName: 'Assistant',
    description:
      'An AI agent on the local model (SmolLM2-135M through the openai engine): answers prompts, reads and writes its workspace.',
    role: AgentRole.WORKER,
    status: AgentStatus.PENDING_VALIDATION,
    capabilities: ['engine:openai'],
    createdBy: admin ?? undefined,
  });
  await em.flush();
  return { agentId: agent.id, created: true, ...validatedBy };
}
