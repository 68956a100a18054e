import type { EntityManager } from '@mikro-orm/postgresql';
import { Agent, ApiKey, AuditLog, Execution, McpServer, Task, ToolDefinition, User, Webhook } from '../entities';
import { AppError } from '../domain/errors';
import { inCatalogOf } from '../domain/tools/catalog-commands';
import type { AuthContext } from './auth/authenticate';

/**
 * The rows routes name by id, each looked up in the caller's organisation only: another
 * organisation's id answers the same 404 as a missing one, never a 403, so a caller learns
 * nothing of other tenants' rows. Permissions are the route's to check, on the row it gets.
 */

type Caller = Pick<AuthContext, 'organizationId'>;

export async function loadAgent(em: EntityManager, caller: Caller, id: string): Promise<Agent> {
  const agent = await em.findOne(Agent, { id, organization: caller.organizationId });
  if (!agent) throw AppError.notFound('Agent');
  return agent;
}

export async function loadServer(em: EntityManager, caller: Caller, id: string): Promise<McpServer> {
  const server = await em.findOne(McpServer, { id, organization: caller.organizationId });
  if (!server) throw AppError.notFound('Server');
  return server;
}

export async function loadExecution(em: EntityManager, caller: Caller, id: string): Promise<Execution> {
  const execution = await em.findOne(Execution, { id, organization: caller.organizationId });
  if (!execution) throw AppError.notFound('Execution');
  return execution;
}

/** The task, not deleted, with its agent and the agent's server. */
export async function loadTask(em: EntityManager, caller: Caller, id: string): Promise<Task> {
  const task = await em.findOne(
    Task,
    { id, organization: caller.organizationId, deletedAt: null },
    { populate: ['agent', 'agent.server'] },
  );
  if (!task) throw AppError.notFound('Task');
  return task;
}

/** A catalog entry the caller's organisation sees: built-in or its own. */
export async function loadTool(em: EntityManager, caller: Caller, id: string): Promise<ToolDefinition> {
  const tool = await em.findOne(ToolDefinition, { id, ...inCatalogOf(caller.organizationId) });
  if (!tool) throw AppError.notFound('Tool');
  return tool;
}

export async function loadUser(em: EntityManager, caller: Caller, id: string): Promise<User> {
  const user = await em.findOne(User, { id, organization: caller.organizationId });
  if (!user) throw AppError.notFound('User');
  return user;
}

export async function loadAuditEntry(em: EntityManager, caller: Caller, id: string): Promise<AuditLog> {
  const row = await em.findOne(AuditLog, { id, organization: caller.organizationId });
  if (!row) throw AppError.notFound('Audit entry');
  return row;
}

export async function loadWebhook(em: EntityManager, caller: Caller, id: string): Promise<Webhook> {
  const webhook = await em.findOne(Webhook, { id, organization: caller.organizationId });
  if (!webhook) throw AppError.notFound('Webhook');
  return webhook;
}

export async function loadApiKey(em: EntityManager, caller: Caller, id: string): Promise<ApiKey> {
  const apiKey = await em.findOne(ApiKey, { id, organization: caller.organizationId }, { populate: ['owner'] });
  if (!apiKey) throw AppError.notFound('API key');
  return apiKey;
}

/**
 * An agent named by id or by name, as MCP clients (people, models) name them. Names are unique
 * per server only: a name shared across servers is refused rather than guessed.
 */
export async function loadAgentByIdOrName(em: EntityManager, caller: Caller, idOrName: string): Promise<Agent> {
  if (/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(idOrName))
    return loadAgent(em, caller, idOrName.toLowerCase());
  const agents = await em.find(Agent, { name: idOrName, organization: caller.organizationId }, { limit: 2 });
  if (agents.length > 1) throw new AppError(409, 'agent_name_ambiguous', `Several agents are named "${idOrName}": name one by its id`);
  if (!agents[0]) throw AppError.notFound('Agent');
  return agents[0];
}
