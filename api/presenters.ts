import type { Agent, AuditLog, Execution, McpServer, Organization, User } from '../entities';
import { SANDBOX_META_KEY } from '../lib/host-contract';

/** Presenters decide what leaves the process: never password hashes, tokens or ciphertexts. */

export function presentOrganization(org: Organization) {
  return { id: org.id, name: org.name, slug: org.slug, createdAt: org.createdAt.toISOString() };
}

export function presentUser(user: User) {
  return {
    id: user.id,
    email: user.email,
    name: user.name,
    role: user.role,
    organizationId: user.organization.id,
    lastLoginAt: user.lastLoginAt?.toISOString() ?? null,
    createdAt: user.createdAt.toISOString(),
    updatedAt: user.updatedAt.toISOString(),
  };
}

export function presentAuditLog(row: AuditLog) {
  return {
    id: row.id,
    action: row.action,
    actor: row.actor ? { id: row.actor.id, email: row.actorEmail ?? null } : row.actorEmail ? { id: null, email: row.actorEmail } : null,
    resourceType: row.resourceType,
    resourceId: row.resourceId ?? null,
    changes: row.changes ?? null,
    ip: row.ip ?? null,
    requestId: row.requestId ?? null,
    createdAt: row.createdAt.toISOString(),
  };
}

/** How the host said, at its last check, that agents' commands run on it (execute_prompt's meta), or null. */
function sandboxOf(server: McpServer): string | null {
  const said = server.toolsSnapshot?.find((t) => t.name === 'execute_prompt')?.meta?.[SANDBOX_META_KEY];
  return typeof said === 'string' ? said : null;
}

export function presentServer(server: McpServer) {
  return {
    id: server.id,
    name: server.name,
    description: server.description ?? null,
    url: server.url,
    transport: server.transport,
    // Only that a token is set, and its last characters to tell tokens apart.
    masterToken: { set: true, last4: server.masterTokenLast4 || null },
    status: server.status,
    lastCheckAt: server.lastCheckAt?.toISOString() ?? null,
    lastLatencyMs: server.lastLatencyMs ?? null,
    lastError: server.lastError ?? null,
    serverInfo: server.serverInfo ?? null,
    protocolVersion: server.protocolVersion ?? null,
    tools: (server.toolsSnapshot ?? []).map((t) => t.name),
    sandbox: sandboxOf(server),
    toolsHash: server.toolsHash ?? null,
    lastToolsChange: server.lastToolsChange ?? null,
    createdAt: server.createdAt.toISOString(),
    updatedAt: server.updatedAt.toISOString(),
  };
}

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
    createdAt: execution.createdAt.toISOString(),
    startedAt: execution.startedAt?.toISOString() ?? null,
    completedAt: execution.completedAt?.toISOString() ?? null,
    durationMs: execution.durationMs ?? null,
    assignmentReason: execution.assignmentReason ?? null,
    retryOfId: execution.retryOf?.id ?? null,
    scheduledFor: execution.scheduledFor?.toISOString() ?? null,
    toolName: execution.toolName ?? null,
    inputTimeoutMs: execution.inputTimeoutMs ?? null,
    ...(detail ? { output: execution.output ?? null, todos: execution.todos ?? [], result: execution.result ?? null, context: execution.context ?? null } : {}),
  };
}
