import type { Agent } from '../../../entities';

export function presentAgentSummary(agent: Agent) {
  return { id: agent.id, name: agent.name, displayName: agent.displayName, role: agent.role, status: agent.status };
}

export function presentAgent(agent: Agent) {
  return {
    id: agent.id,
    serverId: agent.server.id,
    name: agent.name,
    displayName: agent.displayName,
    description: agent.description ?? null,
    role: agent.role,
    status: agent.status,
    supervisorId: agent.supervisor?.id ?? null,
    capabilities: agent.capabilities,
    maxConcurrency: agent.maxConcurrency,
    lastError: agent.lastError ?? null,
    validatedAt: agent.validatedAt?.toISOString() ?? null,
    validatedById: agent.validatedBy?.id ?? null,
    createdAt: agent.createdAt.toISOString(),
    updatedAt: agent.updatedAt.toISOString(),
  };
}
