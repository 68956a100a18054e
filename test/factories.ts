import { randomUUID } from 'node:crypto';
import type { EntityManager } from '@mikro-orm/postgresql';
import { Agent, AgentRole, Execution, ExecutionStatus, ExecutionTrigger, McpServer, Organization, User, UserRole } from '../entities';

/** Fresh rows per test: isolation comes from new organisations, not from truncation or mocks. */
export function uniqueSlug(prefix = 'org'): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

export function makeOrganization(em: EntityManager, name = 'Acme'): Organization {
  return em.create(Organization, { name, slug: uniqueSlug() });
}

export function makeUser(em: EntityManager, organization: Organization, role = UserRole.ADMIN): User {
  return em.create(User, {
    organization,
    email: `${randomUUID().slice(0, 8)}@example.test`,
    name: 'Test User',
    role,
    passwordHash: '$2b$04$placeholderplaceholderplaceholderplaceholderplaceho',
  });
}

export function makeServer(em: EntityManager, organization: Organization, name = `srv-${randomUUID().slice(0, 6)}`): McpServer {
  return em.create(McpServer, {
    organization,
    name,
    url: 'http://127.0.0.1:4100/mcp',
    masterTokenCiphertext: 'v1:iv:tag:ciphertext',
    masterTokenKeyId: 'test1',
  });
}

export function makeAgent(em: EntityManager, server: McpServer, role = AgentRole.WORKER, supervisor?: Agent): Agent {
  return em.create(Agent, {
    organization: server.organization,
    server,
    name: `agent-${randomUUID().slice(0, 6)}`,
    displayName: 'Agent',
    role,
    supervisor,
  });
}

/** A run of `agent` started through the API, in `status` (a RUNNING one has its start time). */
export function makeExecution(em: EntityManager, agent: Agent, status = ExecutionStatus.RUNNING): Execution {
  return em.create(Execution, {
    organization: agent.organization,
    agent: em.getReference(Agent, agent.id),
    trigger: ExecutionTrigger.API,
    status,
    prompt: 'p',
    ...(status === ExecutionStatus.RUNNING ? { startedAt: new Date() } : {}),
  });
}
